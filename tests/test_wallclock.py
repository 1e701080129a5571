"""Fewest steps at a sample budget: the sweep's bookkeeping and the ramp's guarantee."""

import numpy as np
import pytest

import optsched as o
from optsched.wallclock import BudgetSweep, _crossing, budget_sweep


def test_crossing_is_exact_on_a_power_law():
    T = np.array([100.0, 200.0, 400.0, 800.0])
    loss = 3.0 * T**-0.5
    assert _crossing(T, loss, 3.0 * 300.0**-0.5) == pytest.approx(300.0, rel=1e-12)
    assert np.isnan(_crossing(T, loss, 1e-9))  # never reached on the grid
    sweep = BudgetSweep(1.0, T, 0.9 * loss, loss, ())
    ramp, const = sweep.steps_to(3.0 * 300.0**-0.5)
    assert ramp == pytest.approx(0.81 * 300.0, rel=1e-12)
    assert sweep.saved(3.0 * 300.0**-0.5) == pytest.approx(0.19, rel=1e-12)
    with pytest.raises(ValueError, match="target"):
        sweep.steps_to(-1.0)


def test_budget_sweep_ramp_never_needs_more_steps():
    p = o.PowerLawProblem(a=2.5, b=1.2, sigma=0.1, batch=1, features=60)
    D = 1600.0
    sweep = budget_sweep(
        p, D, [400, 100, 200], batch_range=(1.0, 32.0), optimiser=o.LBFGS(max_knots=32)
    )
    assert sweep.horizons.tolist() == [100, 200, 400]
    assert np.all(sweep.loss_ramp <= sweep.loss_constant * (1 + 1e-12))
    for T, sol in zip(sweep.horizons, sweep.solutions, strict=True):
        m = np.asarray(sol.schedule.per_step(sol.problem.batch)[2])
        assert m.sum() == pytest.approx(D, rel=1e-12) and sol.problem.batch == D / T
    target = float(sweep.loss_constant[1])
    ramp, const = sweep.steps_to(target)
    assert const == pytest.approx(200.0, rel=1e-9) and ramp <= const
    with pytest.raises(ValueError, match="two horizons"):
        budget_sweep(p, D, [100])
