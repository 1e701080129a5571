"""Joint solves: learning rate with momentum, and with batch sizes under a sample budget.

References are independent: the momentum optimum is checked against SciPy L-BFGS-B over every
(eta_t, beta_t) on the exact moment recursion; predicted losses against the exact per-step
recursions; the budget and the bounds exactly.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import optsched as o
from optsched.dynamics.momentum import momentum_losses
from optsched.export import to_optax_momentum
from optsched.io import load

HARD = dict(a=1.3, b=2.75, sigma=0.7, batch=4, features=100)
EASY = dict(a=2.5, b=1.2, sigma=0.1, batch=4, features=100)


def exact_spec(problem):
    return o.spectrum(problem, o.mode_grid(problem.features, b=float(problem.b), method="exact"))


def direct_momentum(problem, T, lr_max, beta_max, lr0):
    """Every eta_t and beta_t a variable, exact modes, L-BFGS-B (the reference)."""
    spec = exact_spec(problem)
    m = jnp.full(T, float(problem.batch))

    def log_loss(x):
        return jnp.log(momentum_losses(spec, x[:T], x[T:], m)[-1])

    f = jax.jit(jax.value_and_grad(log_loss))

    def fun(x):
        v, g = f(jnp.asarray(x))
        return float(v), np.asarray(g, dtype=float)

    x0 = np.concatenate([lr0, np.full(T, 0.05)])
    bounds = [(0.0, lr_max)] * T + [(0.0, beta_max)] * T
    res = minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-11},
    )
    return float(np.exp(res.fun))


@pytest.fixture(scope="module")
def momentum_solution():
    p = o.PowerLawProblem(**HARD)
    return p, o.solve(p, 300, o.LearningRateMomentum(lr_max=1.0, beta_max=0.9))


def test_momentum_solve_matches_direct_method(momentum_solution):
    p, sol = momentum_solution
    beta = np.asarray(sol.schedule.momentum)
    lr = np.asarray(sol.schedule.lr)
    assert beta.min() >= 0 and beta.max() <= 0.9 and lr.min() >= 0 and lr.max() <= 1.0
    exact = float(o.loss_curve(p, sol.schedule, method="scan").final_loss)
    assert sol.final_loss == pytest.approx(exact, rel=1e-9)
    # momentum helps in the hard phase, and never hurts: beta = 0 is SGD
    assert sol.final_loss < sol.stats["lr_only_final_loss"]
    ref = direct_momentum(p, 300, 1.0, 0.9, np.asarray(sol.schedule.lr_at(np.arange(300))))
    assert exact <= 1.001 * ref, (exact, ref)


def test_momentum_solution_file_and_export(momentum_solution, tmp_path):
    _, sol = momentum_solution
    sol.save(tmp_path / "m.json")
    f = load(tmp_path / "m.json")
    assert f.momentum_form == "ema"
    assert np.array_equal(np.asarray(f.schedule.momentum), np.asarray(sol.schedule.momentum))
    lr, mu = to_optax_momentum(f)
    t = jnp.arange(1, 300)
    with o.float64():  # exact in float64; the schedules compute in the caller's precision
        beta = sol.schedule.momentum_at(t)
        np.testing.assert_allclose(
            np.asarray(mu(t)),
            np.asarray(beta * (1 - sol.schedule.momentum_at(t - 1)) / (1 - beta)),
            rtol=1e-14,
        )


def test_batch_budget_is_exact_and_never_hurts():
    p = o.PowerLawProblem(**EASY)
    T, D = 300, 1500.0
    sol = o.solve(p, T, o.LearningRateBatch(lr_max=2.0, budget=D, batch_min=1.0, batch_max=40.0))
    _, _, m = sol.schedule.per_step(p.batch)
    m = np.asarray(m)
    assert m.sum() == pytest.approx(D, rel=1e-12)
    assert m.min() >= 1.0 and m.max() <= 40.0
    assert sol.problem.batch == D / T  # baselines ran at the constant batch D / T
    exact = float(o.loss_curve(sol.problem, sol.schedule, method="scan").final_loss)
    assert sol.final_loss == pytest.approx(exact, rel=1e-9)
    assert sol.final_loss <= sol.stats["lr_only_final_loss"]
    assert o.batch_size_schedule(sol).total == round(D)


def test_heavy_ball_form_is_kept_through_the_file(tmp_path):
    p = o.PowerLawProblem(**HARD)
    sol = o.solve(
        p,
        100,
        o.LearningRateMomentum(lr_max=0.5, form="heavy_ball"),
        optimiser=o.LBFGS(max_knots=16),
    )
    assert sol.schedule.momentum_form == "heavy_ball"
    exact = o.loss_curve(p, sol.schedule, method="scan").final_loss
    assert sol.final_loss == pytest.approx(float(exact), rel=1e-9)
    sol.save(tmp_path / "hb.json")
    f = load(tmp_path / "hb.json")
    lr, mu = to_optax_momentum(f)  # already optax's form: returned as is
    t = jnp.arange(100)
    with o.float64():  # the exported schedules compute in the caller's precision
        assert np.array_equal(np.asarray(mu(t)), np.asarray(f.schedule.momentum_at(t)))


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: o.LearningRateBatch(lr_max=1.0, budget=-1.0), "batch budget"),
        (
            lambda: o.LearningRateBatch(lr_max=1.0, budget=100.0, batch_min=2.0, batch_max=8.0),
            "outside the batch range",
        ),
        (lambda: o.LearningRateMomentum(lr_max=1.0, beta_max=1.0), "beta_max"),
        (lambda: o.LearningRateMomentum(lr_max=1.0, form="nesterov"), "momentum form"),
    ],
)
def test_bad_joint_input(make, needle):
    p = o.PowerLawProblem(**EASY)
    with pytest.raises(ValueError, match=needle):
        o.solve(p, 100, make())


def test_models_refuse_controls_they_cannot_predict():
    model = o.ConvexBound(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="cannot predict momentum"):
        o.solve(model, 100, o.LearningRateMomentum(lr_max=1.0))


def test_a_momentum_start_that_diverges_ends_at_the_learning_rate_optimum():
    # heavy ball at mu = 0.9 steps 10x further than the learning-rate optimum: the joint start
    # diverges (NaN gradient; L-BFGS's first step was NaN: "lr must be finite at every knot");
    # the solve now ends at the learning-rate optimum or below
    p = o.PowerLawProblem(**{**HARD, "features": math.inf})
    controls = o.LearningRateMomentum(lr_max=1.0, form="heavy_ball", beta_start=0.9)
    sol = o.solve(p, 10_000, controls, optimiser=o.LBFGS(max_knots=16))
    assert np.all(np.isfinite(np.asarray(sol.schedule.lr)))
    assert sol.final_loss <= sol.stats["lr_only_final_loss"]
