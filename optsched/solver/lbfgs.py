"""L-BFGS in one compiled loop: the optimiser every solver in optsched shares."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

__all__ = ["LBFGS_MEMORY", "PROGRESS_WINDOW", "minimise"]

LBFGS_MEMORY = 30
"""Curvature pairs kept by L-BFGS (fewer iterations than optax's default 10, measured)."""


PROGRESS_WINDOW = 50
"""Iterations per window of :func:`minimise`'s recent-progress measure."""


def minimise(f, theta0, maxiter, gtol, ftol):
    """Minimise the scalar ``f`` from ``theta0`` with ``optax.lbfgs`` (zoom line search).

    Stops after ``maxiter`` iterations, when the gradient norm falls to ``gtol``, or when the
    best value seen improves by less than ``ftol`` three iterations in a row. Returns the last
    iterate, or the best point seen where the last one is worse (never a NaN).

    *Restarts.* A line search that finds no acceptable step still moves, and the curvature pair
    it leaves misleads every later direction: on ill-conditioned objectives (heavy-ball momentum
    near its stability edge) the value then rises and the run stalls far from the optimum. So
    when the value rises above the best seen, the run goes back to the best point with empty
    memory (a steepest-descent step, then L-BFGS again); the iteration after a restart is not
    counted as a stall. A non-finite value or gradient (a point where the loss diverged, whose
    gradient is NaN) restarts too, and counts as a stall. Where the value never rises the
    iterates are those of plain L-BFGS.

    *Recent progress.* The best value is noted every :data:`PROGRESS_WINDOW` iterations; how much
    it fell since the last note but one (over the last ``W .. 2W`` iterations; ``inf`` before
    ``2W``) says whether a run stopped by ``maxiter`` was still moving.

    Traceable (use it inside ``jit`` or ``vmap``). Returns ``(theta, f(theta), iterations,
    gradient norm, recent progress)``.
    """
    opt = optax.lbfgs(memory_size=LBFGS_MEMORY)
    value_and_grad = optax.value_and_grad_from_state(f)

    def step(carry):
        theta, state, best, best_value, _, stall, restarted, i, notes = carry
        value, grad = value_and_grad(theta, state=state)
        gnorm = optax.tree.norm(grad)
        # a non-finite value or gradient (a diverged point) is a stall that restarts
        bad = ~(jnp.isfinite(value) & jnp.isfinite(gnorm))
        # progress below ftol counts as a stall (not on the re-evaluation after a restart)
        progress = jnp.where(best_value - value < ftol, stall + 1, 0)
        stall = jnp.where(bad, stall + 1, jnp.where(restarted, stall, progress))
        restart = bad | (value > best_value)
        better = ~bad & (value < best_value)
        best = jnp.where(better, theta, best)
        best_value = jnp.where(better, value, best_value)
        updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=f)
        fresh = opt.init(best)
        state = jax.tree.map(lambda a, b: jnp.where(restart, a, b), fresh, state)
        theta = jnp.where(restart, best, theta + updates)
        gnorm = jnp.where(restart, jnp.inf, gnorm)
        noted = (i + 1) % PROGRESS_WINDOW == 0
        notes = jnp.where(noted, jnp.stack([notes[1], best_value]), notes)
        return (theta, state, best, best_value, gnorm, stall, restart, i + 1, notes)

    def cond(carry):
        *_, gnorm, stall, _, i, _ = carry
        return (i < maxiter) & (gnorm > gtol) & (stall < 3)

    inf = jnp.asarray(jnp.inf, dtype=theta0.dtype)
    zero = jnp.asarray(0)
    notes = jnp.full(2, jnp.inf, dtype=theta0.dtype)
    init = (theta0, opt.init(theta0), theta0, inf, inf, zero, jnp.asarray(False), zero, notes)
    theta, _, best, best_value, gnorm, _, _, iters, notes = jax.lax.while_loop(cond, step, init)
    # the loop's last step is taken but not yet evaluated
    value = f(theta)
    keep = value <= best_value  # False for NaN
    final = jnp.where(keep, value, best_value)
    return jnp.where(keep, theta, best), final, iters, gnorm, notes[0] - final
