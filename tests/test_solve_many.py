"""Batched solves: ``solve_many`` gives what one ``solve`` per problem gives, both strategies."""

import math

import numpy as np
import pytest

import optsched as o
from optsched.dynamics.sgd import propagate_blocks, step_losses
from optsched.solver.solve import _pad_modes

# these tests build JAX inputs themselves, at full precision
pytestmark = pytest.mark.usefixtures("float64")

# an easy and a hard problem with different mode counts (exact N = 40 modes; quadrature at inf)
PROBLEMS = [
    o.PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4, features=40),
    o.PowerLawProblem(1.3, 2.75, sigma=0.7, batch=4, features=math.inf),
]
SMALL = dict(optimiser=o.LBFGS(max_knots=32))


def test_padded_modes_are_inert():
    """Appended lambda = 0 modes change neither the per-step nor the block losses."""
    spec = o.make_spectrum(PROBLEMS[0], max_time=1e3)
    padded = _pad_modes(spec, spec.size + 7, spec.max_time)
    lr = np.linspace(0.5, 0.01, 50)
    m = np.full(50, 4.0)
    np.testing.assert_allclose(step_losses(padded, lr, m), step_losses(spec, lr, m), rtol=1e-13)
    lengths = np.array([5.0, 20.0, 25.0])
    got = propagate_blocks(padded, lr[:3], m[:3], lengths)[0]
    np.testing.assert_allclose(got, propagate_blocks(spec, lr[:3], m[:3], lengths)[0], rtol=1e-12)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_many_problems_match_one_solve_each(strategy):
    T = 200
    many = o.solve_many(PROBLEMS, T, [2.0, 1.0], strategy=strategy, **SMALL)
    for p, cap, sol in zip(PROBLEMS, [2.0, 1.0], many, strict=True):
        ref = o.solve(p, T, cap, **SMALL)
        assert sol.problem is p and sol.horizon == T and sol.phase == p.phase
        assert sol.final_loss == pytest.approx(ref.final_loss, rel=1e-6)
        assert sol.final_loss < sol.best_baseline().final_loss
        lr = np.asarray(sol.schedule.lr)
        assert lr.min() >= 0 and lr.max() <= cap
        assert sol.stats["strategy"] == strategy


def test_many_horizons_vmap_uses_blocks_and_matches():
    """Different horizons in one batched program (closed-form blocks share one shape)."""
    horizons = [60, 150]
    many = o.solve_many(PROBLEMS[1], horizons, 1.0, strategy="vmap", **SMALL)
    for T, sol in zip(horizons, many, strict=True):
        assert sol.stats["method"] == "blocks"
        ref = o.solve(PROBLEMS[1], T, 1.0, **SMALL)
        assert sol.horizon == T
        assert sol.final_loss == pytest.approx(ref.final_loss, rel=1e-6)


def test_bad_batches_fail_clearly():
    with pytest.raises(ValueError, match="do not match .models 2, horizons 3, controls 1."):
        o.solve_many(PROBLEMS, [10, 20, 30])
    with pytest.raises(ValueError, match="strategy"):
        o.solve_many(PROBLEMS[0], 10, 2.0, strategy="threads")
    with pytest.raises(ValueError, match="horizon must be an integer"):
        o.solve_many(PROBLEMS[0], [10, 0])
