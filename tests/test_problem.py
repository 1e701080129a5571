"""PowerLawProblem: validation at the boundary, notation round trips, tail sums."""

import math

import numpy as np
import pytest

from optsched import PowerLawProblem


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(a=1.0, b=2.0), "a"),
        (dict(a=0.5, b=2.0), "a"),
        (dict(a=2.0, b=1.0), "b"),
        (dict(a=2.0, b=1.5, sigma=-0.1), "sigma"),
        (dict(a=2.0, b=1.5, batch=0.5), "batch"),
        (dict(a=float("nan"), b=1.5), "a"),
        (dict(a=2.0, b=float("inf")), "b"),
        (dict(a=2.0, b=1.5, features=0), "features"),
        (dict(a=2.0, b=1.5, features=2.5), "features"),
        (dict(a=2.0, b=1.5, features="many"), "features"),
        (dict(a=2.0, b=1.5, features=100, teacher_modes=50), "teacher_modes"),
    ],
)
def test_invalid_values_raise_naming_the_value(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PowerLawProblem(**kwargs)


def test_fsl_round_trip():
    p = PowerLawProblem.from_fsl(s=0.8, beta=1.6, sigma=0.2)
    assert math.isclose(float(p.b), 1.6) and math.isclose(float(p.a), 1 + 0.8 * 1.6)
    s, beta = p.to_fsl()
    assert math.isclose(s, 0.8) and math.isclose(beta, 1.6)
    q = PowerLawProblem(a=2.3, b=1.75)
    assert np.allclose(PowerLawProblem.from_fsl(*q.to_fsl()).a, 2.3)


def test_plrf_round_trip():
    p = PowerLawProblem.from_plrf(alpha=0.8, beta=0.4)
    assert math.isclose(float(p.b), 1.6) and math.isclose(float(p.a), 2.4)
    alpha, beta = PowerLawProblem(a=1.3, b=2.75).to_plrf()
    q = PowerLawProblem.from_plrf(alpha, beta)
    assert np.allclose([q.a, q.b], [1.3, 2.75])
    with pytest.raises(ValueError, match="b"):
        PowerLawProblem.from_plrf(alpha=0.4, beta=1.0)  # 2 alpha <= 1


def test_phase():
    assert PowerLawProblem(2.5, 1.2).phase == "easy"
    assert PowerLawProblem(1.3, 2.75).phase == "hard"
    assert PowerLawProblem(2.0, 2.0).phase == "boundary"


def test_tail_and_initial_loss_match_direct_sums():
    k = np.arange(1, 5001, dtype=float)
    p = PowerLawProblem(1.7, 1.4, features=200, teacher_modes=5000)
    assert np.isclose(float(p.tail_loss()), np.sum(k[200:] ** -1.7), rtol=1e-12)
    assert np.isclose(float(p.initial_loss()), np.sum(k**-1.7), rtol=1e-12)
    assert float(PowerLawProblem(1.7, 1.4, features=200).tail_loss()) == 0.0
    inf = PowerLawProblem(2.5, 1.2)
    assert np.isclose(float(inf.initial_loss()), 1.341487257250917, rtol=1e-12)


def test_dict_round_trip_with_infinite_width():
    p = PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4, features=500, teacher_modes="inf")
    d = p.to_dict()
    assert d["teacher_modes"] == "inf" and d["features"] == 500
    q = PowerLawProblem.from_dict(d)
    assert q.features == 500 and math.isinf(q.teacher_modes) and float(q.sigma) == 0.1
    with pytest.raises(ValueError, match="'b'"):
        PowerLawProblem.from_dict({"a": 2.0})
