"""The adjoint recursion (optsched.dynamics.adjoint) against JAX's own reverse mode of the scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optsched import PowerLawProblem, mode_grid, spectrum
from optsched.dynamics.adjoint import SPLIT_LIMIT, final_value
from optsched.dynamics.momentum import momentum_final_loss, momentum_losses
from optsched.dynamics.sgd import sgd_step, step_final_loss, step_losses

RTOL = 1e-12


def _close(a, b):
    """Largest difference relative to the largest entry (per leaf)."""
    return max(
        float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(x)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.fixture
def spec(float64):
    problem = PowerLawProblem(a=2.2, b=1.4, features=200, sigma=0.3, batch=3.0)
    return spectrum(problem, mode_grid(200, b=1.4, max_time=2e3))


@pytest.fixture
def controls(float64):
    t = jnp.arange(700.0)
    lr = 0.25 + 0.15 * jnp.sin(t / 90.0)
    batch = 2.5 + jnp.cos(t / 40.0)
    beta = 0.5 + 0.3 * jnp.cos(t / 60.0)
    return lr, batch, beta


@pytest.mark.parametrize("chunk", [None, 1, 37, 700])
def test_sgd_final_loss_gradient_equals_reverse_mode_of_the_scan(spec, controls, chunk):
    """Learning-rate, batch and every spectrum cotangent, with chunks that need padding or not."""
    lr, batch, _ = controls

    def reference(lr, batch, spec):
        return step_losses(spec, lr, batch)[-1]

    def adjoint(lr, batch, spec):
        def step(spec, c, u):
            return sgd_step(spec, c, u[0], u[1])

        return final_value(
            step, lambda s, c: s.loss(c), spec, spec.target, (lr, batch), chunk=chunk
        )

    value, grads = jax.value_and_grad(reference, argnums=(0, 1, 2))(lr, batch, spec)
    value_a, grads_a = jax.jit(jax.value_and_grad(adjoint, argnums=(0, 1, 2)))(lr, batch, spec)
    assert float(value_a) == pytest.approx(float(value), rel=1e-14)
    assert _close(grads, grads_a) < RTOL


def test_solver_objective_forms_match_the_scan(spec, controls):
    """The functions the solver calls: value and control gradients, under jit and vmap."""
    lr, batch, beta = controls
    grad = jax.jit(jax.vmap(jax.grad(lambda lr: step_final_loss(spec, lr, batch))))
    both = jnp.stack([lr, 0.8 * lr])
    expected = jnp.stack([jax.grad(lambda lr: step_losses(spec, lr, batch)[-1])(x) for x in both])
    assert _close(expected, grad(both)) < RTOL
    for form, scale in (("ema", 1.0), ("heavy_ball", 0.3)):

        def reference(lr, beta, batch, form=form):
            return momentum_losses(spec, lr, beta, batch, form=form)[-1]

        def adjoint(lr, beta, batch, form=form):
            return momentum_final_loss(spec, lr, beta, batch, form=form)

        args = (scale * lr, beta, batch)
        value, grads = jax.value_and_grad(reference, argnums=(0, 1, 2))(*args)
        value_a, grads_a = jax.jit(jax.value_and_grad(adjoint, argnums=(0, 1, 2)))(*args)
        assert np.isfinite(float(value)) and float(value_a) == pytest.approx(
            float(value), rel=1e-14
        )
        assert _close(grads, grads_a) < RTOL, form


def test_long_runs_recompute_chunks_and_give_the_same_gradient(spec, float64):
    """Past the storage limit the states are recomputed chunk by chunk: same numbers."""
    lr = jnp.full(3000, 0.2)
    batch = jnp.full(3000, 3.0)

    def step(spec, c, u):
        return sgd_step(spec, c, u[0], u[1])

    def loss(lr, chunk):
        return final_value(
            step, lambda s, c: s.loss(c), spec, spec.target, (lr, batch), chunk=chunk
        )

    kept = jax.grad(loss)(lr, None)
    chunked = jax.grad(loss)(lr, 55)
    assert _close(kept, chunked) < 1e-13


def test_large_states_take_every_cotangent_in_the_loop(float64):
    """Past SPLIT_LIMIT state entries (here 6000 exact modes) the other backward pass: same
    numbers, spectrum cotangents included."""
    problem = PowerLawProblem(a=2.2, b=1.4, features=6000, sigma=0.3, batch=3.0)
    spec = spectrum(problem, mode_grid(6000, b=1.4, method="exact"))
    assert spec.size > SPLIT_LIMIT
    t = jnp.arange(60.0)
    lr, batch = 0.3 + 0.1 * jnp.sin(t / 9.0), 2.5 + jnp.cos(t / 4.0)

    def reference(lr, batch, spec):
        return step_losses(spec, lr, batch)[-1]

    def adjoint(lr, batch, spec):
        def step(spec, c, u):
            return sgd_step(spec, c, u[0], u[1])

        return final_value(step, lambda s, c: s.loss(c), spec, spec.target, (lr, batch), chunk=7)

    grads = jax.grad(reference, argnums=(0, 1, 2))(lr, batch, spec)
    assert _close(grads, jax.jit(jax.grad(adjoint, argnums=(0, 1, 2)))(lr, batch, spec)) < RTOL
    only_lr = jax.jit(jax.grad(lambda lr: adjoint(lr, batch, spec)))(lr)
    assert _close(grads[0], only_lr) < RTOL


def test_empty_runs_are_refused(spec):
    with pytest.raises(ValueError, match="at least one step"):
        final_value(lambda p, x, u: x, lambda p, x: jnp.sum(x), spec, spec.target, jnp.zeros(0))
