"""Block propagation vs the per-step recursion (1e-8), checkpointing, stability and divergence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optsched import DivergenceError, PowerLawProblem, Schedule, loss_curve, mode_grid, spectrum
from optsched.dynamics.sgd import (
    max_stable_lr,
    propagate_blocks,
    sgd_step,
    stability_margin,
    step_losses,
)

# these tests build JAX inputs themselves, at full precision
pytestmark = pytest.mark.usefixtures("float64")


def _blocks_case(features=500, method="exact"):
    p = PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4, features=features)
    sp = spectrum(p, mode_grid(features, b=1.2, method=method, max_time=1e4))
    lengths = np.array([1, 3, 10, 40, 100, 300, 500, 46])
    lr = np.array([0.05, 0.2, 0.4, 0.4, 0.3, 0.2, 0.05, 0.0])
    m = np.array([4.0, 4.0, 2.0, 4.0, 8.0, 4.0, 3.5, 4.0])
    return sp, lengths, jnp.asarray(lr), jnp.asarray(m)


@pytest.mark.parametrize("features, method", [(500, "exact"), (10**6, "quadrature")])
def test_blocks_match_per_step_recursion(features, method):
    sp, lengths, lr, m = _blocks_case(features, method)
    blocks, _ = propagate_blocks(sp, lr, m, jnp.asarray(lengths, float))
    T = int(lengths.sum())
    steps = step_losses(
        sp,
        jnp.repeat(lr, lengths, total_repeat_length=T),
        jnp.repeat(m, lengths, total_repeat_length=T),
    )
    ends = np.cumsum(lengths)
    rel = np.max(np.abs(np.asarray(blocks) / np.asarray(steps)[ends] - 1))
    assert rel <= 1e-8, rel


def test_block_gradient_matches_per_step_gradient():
    sp, lengths, lr, m = _blocks_case()
    T = int(lengths.sum())
    n = jnp.asarray(lengths, float)

    def by_blocks(lr, m):
        return propagate_blocks(sp, lr, m, n)[0][-1]

    def by_steps(lr, m):
        rep = lambda v: jnp.repeat(v, lengths, total_repeat_length=T)  # noqa: E731
        return step_losses(sp, rep(lr), rep(m))[-1]

    gb = jax.grad(by_blocks, argnums=(0, 1))(lr, m)
    gs = jax.grad(by_steps, argnums=(0, 1))(lr, m)
    for a, b in zip(gb, gs, strict=True):
        assert np.all(np.isfinite(np.asarray(a)))
        assert np.allclose(a, b, rtol=1e-8, atol=1e-12 * float(jnp.max(jnp.abs(b))))


def test_block_gradient_is_finite_when_all_modes_are_degenerate():
    # lr = 0 everywhere makes the step map the identity: eigh's own derivative would be NaN
    sp, lengths, lr, m = _blocks_case()
    g = jax.grad(lambda lr: propagate_blocks(sp, lr, m, jnp.asarray(lengths, float))[0][-1])(
        jnp.zeros_like(lr)
    )
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.min(g)) < 0


def test_checkpointed_scan_equals_plain_scan():
    sp, lengths, lr, m = _blocks_case(60)
    lr_t = jnp.linspace(0.4, 0.01, 997)
    m_t = jnp.full(997, 4.0)
    f = lambda lr_t, c: step_losses(sp, lr_t, m_t, checkpoint_every=c)[-1]  # noqa: E731
    v0, g0 = jax.value_and_grad(f)(lr_t, None)
    v1, g1 = jax.value_and_grad(f)(lr_t, 64)
    assert np.isclose(v0, v1, rtol=1e-13) and np.allclose(g0, g1, rtol=1e-10, atol=0)


def test_stability_limit_separates_stable_from_divergent():
    p = PowerLawProblem(2.0, 1.5, sigma=0.3, batch=2, features=200)
    sp = spectrum(p, mode_grid(200, b=1.5, method="exact"))
    limit = float(max_stable_lr(sp, 2.0))
    assert (
        float(stability_margin(sp, 0.99 * limit, 2.0))
        > 0
        > float(stability_margin(sp, 1.01 * limit, 2.0))
    )
    # the per-step recursion agrees: just below the limit the loss stays bounded ...
    c = sp.target
    for _ in range(3000):
        c = sgd_step(sp, c, 0.98 * limit, 2.0)
    assert np.isfinite(float(sp.loss(c))) and float(sp.loss(c)) < 10 * float(sp.initial_loss())
    # ... and above it the run is reported as divergent, not returned as inf/NaN
    sched = Schedule.constant(1.3 * limit, 3000)
    with pytest.raises(DivergenceError, match="largest stable constant lr"):
        loss_curve(p, sched)
    with pytest.raises(DivergenceError, match="diverges"):
        loss_curve(p, sched, method="scan")
    traj = loss_curve(p, sched, method="scan", check=False)
    assert bool(traj.diverged)


def test_blocks_need_piecewise_constant_schedules():
    p = PowerLawProblem(2.0, 1.5, features=20)
    with pytest.raises(ValueError, match="previous"):
        loss_curve(p, Schedule([0, 9], [0.1, 0.2]), method="blocks")


def test_grid_max_time_is_enforced():
    p = PowerLawProblem(2.0, 1.5, features=10**6)
    grid = mode_grid(p.features, b=1.5, max_time=10.0)
    with pytest.raises(ValueError, match="max_time"):
        loss_curve(p, Schedule.constant(0.5, 100), grid=grid)
