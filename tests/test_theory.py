"""Theory exponents (docs/model.md) and slope fits."""

import numpy as np
import pytest

from optsched.model.theory import exponents, fit_exponent, local_exponents, phase


def test_easy_phase_exponents():
    e = exponents(2.5, 1.2)
    assert e.phase == "easy"
    assert np.isclose(e.xi, 1 - 1.2 / 2.5) and np.isclose(e.delta, 1.4)
    assert np.isclose(e.loss_optimal, 1.5 / 2.5) and np.isclose(e.loss_constant, 1.5 / 2.7)
    assert np.isclose(e.batch_ramp, 1 / 2.4 - 1)


def test_hard_phase_exponents():
    e = exponents(1.3, 2.75)
    assert e.phase == "hard" and e.xi == 0.0
    assert np.isclose(e.loss_optimal, 0.3 / 2.75)
    assert phase(2.0, 2.0) == "boundary"


def test_bad_exponents_raise():
    with pytest.raises(ValueError, match="a must be"):
        exponents(1.0, 2.0)
    with pytest.raises(ValueError, match="b must be"):
        phase(2.0, float("nan"))


def test_fit_recovers_a_power_law():
    T = np.geomspace(1e2, 1e6, 9)
    assert np.isclose(fit_exponent(T, 3.0 * T**-0.6), -0.6)
    assert np.allclose(local_exponents(T, T**-0.25), -0.25)
    with pytest.raises(ValueError, match="positive"):
        fit_exponent([1, 2], [1, -1])


def test_measure_recovers_known_exponents():
    from types import SimpleNamespace

    import optsched as o
    from optsched.model.theory import measure

    sols = []
    for T in (1000, 4000, 16000):
        sched = o.Schedule.from_function(lambda t, T=T: T**-0.3 * (1 - t / T) ** 1.4, T)
        sols.append(SimpleNamespace(schedule=sched, final_loss=2.0 * T**-0.6, lr_max=1.0))
    m = measure(sols)
    assert np.isclose(m["loss_exponent"], 0.6) and np.allclose(m["loss_exponent_local"], 0.6)
    assert abs(m["xi"] - 0.3) < 1e-3 and abs(m["delta"] - 1.4) < 1e-2
    with pytest.raises(ValueError, match="two or more"):
        measure(sols[:1])
