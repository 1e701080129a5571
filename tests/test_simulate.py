"""The recursions against Monte-Carlo SGD on sampled Gaussian data (within 3 standard errors).

Each test also checks that it has teeth: a recursion with a wrong noise term falls far outside
the Monte-Carlo band.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from optsched import (
    DivergenceError,
    PowerLawProblem,
    Schedule,
    loss_curve,
    make_spectrum,
    simulate,
)
from optsched.dynamics.momentum import momentum_losses
from optsched.dynamics.sgd import step_losses

# these tests build JAX inputs themselves, at full precision
pytestmark = pytest.mark.usefixtures("float64")

T = 300
LOGGED = np.array([1, 3, 10, 30, 100, 200, 300])
PROBLEM = PowerLawProblem(2.0, 1.5, sigma=0.3, batch=4, features=30, teacher_modes=60)


def _z(pred, sim):
    pred, mean, se = (np.asarray(x)[LOGGED] for x in (pred, sim.mean, sim.stderr))
    return (pred - mean) / se


@pytest.mark.parametrize(
    "name, schedule",
    [
        ("constant", Schedule.constant(0.4, T)),
        ("decaying", Schedule.from_function(lambda t: 0.6 * (1 - t / T) ** 1.5 + 0.02, T)),
    ],
)
def test_sgd_recursion_matches_monte_carlo(name, schedule):
    sim = simulate(PROBLEM, schedule, runs=512, seed=1)
    pred = loss_curve(PROBLEM, schedule, method="scan").loss
    z = _z(pred, sim)
    assert np.all(np.abs(z) < 3), (name, z)
    # teeth: dropping the multiplicative (loss-dependent) noise is detectably wrong
    spec = make_spectrum(PROBLEM, schedule)
    wrong_spec = type(spec)(
        spec.lam, spec.target, spec.weight, spec.offset, spec.noise + 0.5, spec.max_time
    )
    lr, _, m = schedule.per_step(4.0)
    assert np.max(np.abs(_z(step_losses(wrong_spec, lr, m), sim))) > 5


@pytest.mark.parametrize(
    "form, lr, beta", [("ema", (0.3, 0.1), (0.9, 0.5)), ("heavy_ball", (0.05, 0.02), (0.9, 0.5))]
)
def test_momentum_recursion_matches_monte_carlo(form, lr, beta):
    schedule = Schedule([0, T - 1], lr, momentum=beta, horizon=T, momentum_form=form)
    sim = simulate(PROBLEM, schedule, runs=512, seed=2)
    pred = loss_curve(PROBLEM, schedule).loss
    z = _z(pred, sim)
    assert np.all(np.abs(z) < 3), (form, z)
    other = "heavy_ball" if form == "ema" else "ema"
    spec = make_spectrum(PROBLEM, schedule)
    lr_t, b_t, m_t = schedule.per_step(4.0)
    assert np.max(np.abs(_z(momentum_losses(spec, lr_t, b_t, m_t, form=other), sim))) > 5


def test_batch_ramp_matches_monte_carlo():
    schedule = Schedule([0, T - 1], [0.3, 0.3], batch=[1, 16], horizon=T)
    sim = simulate(PROBLEM, schedule, runs=512, seed=3)
    spec = make_spectrum(PROBLEM, schedule)
    lr, _, m = schedule.per_step(4.0)
    pred = step_losses(spec, lr, jnp.round(m))  # the simulator uses whole batches
    z = _z(pred, sim)
    assert np.all(np.abs(z) < 3), z
    fixed = step_losses(spec, lr, jnp.full_like(m, 4.0))
    assert np.max(np.abs(_z(fixed, sim))) > 5


def test_momentum_blocks_in_closed_form_match_monte_carlo():
    """Momentum, batch size and learning rate changing block by block, propagated in closed form
    (``method="blocks"``), against Monte-Carlo SGD at the block ends."""
    schedule = Schedule(
        [0, 40, 120, T - 1],
        [0.3, 0.2, 0.1, 0.1],
        momentum=[0.9, 0.5, 0.0, 0.0],
        batch=[2, 4, 8, 8],
        horizon=T,
        interpolation="previous",
    )
    sim = simulate(PROBLEM, schedule, runs=512, seed=4)
    curve = loss_curve(PROBLEM, schedule, method="blocks")
    at = np.asarray(curve.steps)[1:]
    z = (np.asarray(curve.loss)[1:] - np.asarray(sim.mean)[at]) / np.asarray(sim.stderr)[at]
    assert np.all(np.abs(z) < 3), z
    # teeth: the same blocks without the momentum are far outside the band
    plain = loss_curve(PROBLEM, schedule.replace(momentum=None), method="blocks")
    z_plain = (np.asarray(plain.loss)[1:] - np.asarray(sim.mean)[at]) / np.asarray(sim.stderr)[at]
    assert np.max(np.abs(z_plain)) > 5


def test_simulate_needs_a_finite_teacher():
    with pytest.raises(ValueError, match="finite"):
        simulate(PowerLawProblem(2.0, 1.5), Schedule.constant(0.1, 10))


def test_divergent_simulation_is_reported_not_averaged():
    with pytest.raises(DivergenceError, match="diverges in the simulation"):
        simulate(PROBLEM, Schedule.constant(5.0, 60), runs=8)
