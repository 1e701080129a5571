"""L-BFGS in one compiled loop: the optimiser every solver in optsched shares."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

__all__ = ["LBFGS_MEMORY", "minimise"]

LBFGS_MEMORY = 30
"""Curvature pairs kept by L-BFGS (fewer iterations than optax's default 10, measured)."""


def minimise(f, theta0, maxiter, gtol, ftol):
    """Minimise the scalar ``f`` from ``theta0`` with ``optax.lbfgs`` (zoom line search).

    Stops after ``maxiter`` iterations, when the gradient norm falls to ``gtol``, or when ``f``
    decreases by less than ``ftol`` three iterations in a row. Traceable (use it inside ``jit``
    or ``vmap``). Returns ``(theta, iterations, gradient norm)``.
    """
    opt = optax.lbfgs(memory_size=LBFGS_MEMORY)
    value_and_grad = optax.value_and_grad_from_state(f)

    def step(carry):
        theta, state, value_prev, _, _, stall, i = carry
        value, grad = value_and_grad(theta, state=state)
        updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=f)
        # progress below ftol counts as a stall; three in a row end the run
        stall = jnp.where(value_prev - value < ftol, stall + 1, 0)
        return (
            optax.apply_updates(theta, updates),
            state,
            value,
            value_prev,
            optax.tree.norm(grad),
            stall,
            i + 1,
        )

    def cond(carry):
        *_, gnorm, stall, i = carry
        return (i < maxiter) & (gnorm > gtol) & (stall < 3)

    inf = jnp.asarray(jnp.inf, dtype=theta0.dtype)
    zero = jnp.asarray(0)
    init = (theta0, opt.init(theta0), inf, inf, inf, zero, zero)
    theta, *_, gnorm, _, iters = jax.lax.while_loop(cond, step, init)
    return theta, iters, gnorm
