"""Momentum recursion: reduces to SGD at beta = 0; the two forms are distinct; the closed-form
blocks equal the per-step recursion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optsched import PowerLawProblem, Schedule, loss_curve, mode_grid, spectrum
from optsched.dynamics.momentum import momentum_losses, propagate_momentum_blocks
from optsched.dynamics.sgd import step_losses

# these tests build JAX inputs themselves, at full precision
pytestmark = pytest.mark.usefixtures("float64")


@pytest.fixture
def spec():
    p = PowerLawProblem(2.0, 1.5, sigma=0.3, batch=4, features=80)
    return spectrum(p, mode_grid(80, b=1.5))


def test_zero_momentum_is_plain_sgd(spec):
    lr = jnp.linspace(0.5, 0.05, 400)
    m = jnp.full(400, 4.0)
    sgd = step_losses(spec, lr, m)
    for form in ("ema", "heavy_ball"):
        mom = momentum_losses(spec, lr, jnp.zeros(400), m, form=form)
        assert np.allclose(mom, sgd, rtol=1e-13, atol=0)


def test_ema_and_heavy_ball_match_under_the_step_mapping(spec):
    # EMA (eta, beta) equals heavy ball with mu = beta and step eta (1 - beta) for constant beta
    lr, beta = 0.4, 0.8
    m = jnp.full(300, 4.0)
    ema = momentum_losses(spec, jnp.full(300, lr), jnp.full(300, beta), m, form="ema")
    hb = momentum_losses(
        spec, jnp.full(300, lr * (1 - beta)), jnp.full(300, beta), m, form="heavy_ball"
    )
    assert np.allclose(ema, hb, rtol=1e-12)
    plain = momentum_losses(spec, jnp.full(300, lr), jnp.full(300, beta), m, form="heavy_ball")
    assert not np.allclose(ema, plain, rtol=1e-3)


def test_unknown_form_is_rejected(spec):
    with pytest.raises(ValueError, match="heavy_ball"):
        momentum_losses(spec, jnp.ones(3), jnp.zeros(3), jnp.ones(3), form="nesterov")


BLOCK_LENGTHS = np.array([1, 2, 7, 0, 130, 1000, 61, 0])
BLOCK_LR = np.array([0.1, 0.3, 0.5, 0.9, 0.4, 0.2, 0.05, 0.0])
BLOCK_BETA = np.array([0.0, 0.5, 0.9, 0.1, 0.8, 0.3, 0.0, 0.0])
BLOCK_BATCH = np.array([4.0, 4.0, 8.0, 1.0, 2.0, 4.0, 16.0, 1.0])


@pytest.mark.parametrize("form", ["ema", "heavy_ball"])
def test_closed_form_blocks_equal_the_per_step_recursion(spec, form):
    """Losses at every block end and their gradients in (lr, beta, batch), to 1e-10 relative."""
    lr = BLOCK_LR if form == "ema" else 0.2 * BLOCK_LR
    idx = np.repeat(np.arange(len(BLOCK_LENGTHS)), BLOCK_LENGTHS)
    ends = np.cumsum(BLOCK_LENGTHS)
    lengths = jnp.asarray(BLOCK_LENGTHS, dtype=float)

    def blocks(lr, beta, m):
        return propagate_momentum_blocks(spec, lr, beta, m, lengths, form=form)[0]

    def steps(lr, beta, m):
        return momentum_losses(spec, lr[idx], beta[idx], m[idx], form=form)[ends]

    args = tuple(jnp.asarray(x) for x in (lr, BLOCK_BETA, BLOCK_BATCH))
    assert np.allclose(blocks(*args), steps(*args), rtol=1e-10, atol=0)
    g_blocks = jax.grad(lambda *a: jnp.log(blocks(*a)[-1]), argnums=(0, 1, 2))(*args)
    g_steps = jax.grad(lambda *a: jnp.log(steps(*a)[-1]), argnums=(0, 1, 2))(*args)
    for gb, gs in zip(g_blocks, g_steps, strict=True):
        assert np.max(np.abs(gb - gs)) < 1e-10 * np.max(np.abs(gs))


def test_closed_form_blocks_through_loss_curve(spec):
    """``method="blocks"`` runs momentum schedules in closed form, equal to the scan's curve at
    the block ends; a long block costs no more steps than a short one."""
    problem = PowerLawProblem(2.0, 1.5, sigma=0.3, batch=4, features=80)
    sched = Schedule(
        [0, 10, 5000, 19_999],
        [0.5, 0.4, 0.2, 0.05],
        momentum=[0.9, 0.8, 0.5, 0.0],
        batch=[4, 4, 8, 8],
        horizon=20_000,
        interpolation="previous",
    )
    blocks = loss_curve(problem, sched, method="blocks")
    scan = loss_curve(problem, sched, method="scan")
    assert list(np.asarray(blocks.steps)) == [0, 10, 5000, 19_999, 20_000]
    assert np.allclose(blocks.loss, np.asarray(scan.loss)[np.asarray(blocks.steps)], rtol=1e-9)
