r"""``solve``: the optimal learning-rate schedule by optimal control of the loss dynamics.

Problem: minimise the final excess loss :math:`L_T` over :math:`0 \le \eta_t \le \eta_{max}`.

Method (direct shooting on knots):

1. *Controls.* :math:`\eta` is piecewise constant on ``K`` blocks whose boundaries are dense at
   both ends of training (geometric in ``t`` near 0 and in ``T - t`` near ``T``), where the optimum
   bends. It is parameterised as :math:`\eta_k = \eta_{max}\,\sigma(\theta_k)`, so the bounds hold
   by construction.
2. *Objective and gradient.* :math:`\log L_T` through the closed-form block propagation
   (:func:`~optsched.dynamics.sgd.propagate_blocks`). Its cost does not depend on ``T``, and reverse
   mode through it is the discrete adjoint (co-state) recursion.
3. *Optimiser.* L-BFGS with a zoom line search and ``LBFGS_MEMORY`` curvature pairs
   (``optax.lbfgs``),
   compiled with ``jax.jit``. A level ends when ``log L_T`` improves by less than ``ftol`` three
   iterations in a row (1000x looser on the coarse levels, which only seed the next), or after
   ``maxiter`` iterations.
4. *Refinement.* Start at ``K = 16`` from the best tuned baseline, then double ``K``. The knot
   levels are nested, so each level starts exactly from the previous optimum; refinement stops
   when the optimum moves by less than ``rtol`` or ``K`` reaches ``max_knots``.
5. *Guarantee.* All baselines are tuned first; if the optimum were not better than the best of
   them, the best baseline is returned (and says so in the diagnostics).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .baselines import BaselineResult, tune_baselines
from .controls import Schedule, block_lengths, knot_blocks
from .dynamics.sgd import max_stable_lr, propagate_blocks
from .problem import PowerLawProblem
from .spectrum import Spectrum, mode_grid, spectrum

__all__ = ["Solution", "solve", "knot_steps"]


class Solution(eqx.Module):
    """An optimal schedule and everything known about it.

    Attributes:
        problem: the problem solved.
        schedule: the optimal schedule (knots, ``"previous"`` interpolation).
        final_loss: predicted final excess loss :math:`L_T` of ``schedule``.
        loss_steps, loss: predicted loss at the block boundaries.
        phase: ``"easy"``, ``"hard"`` or ``"boundary"``.
        lr_max: the learning-rate cap used.
        baselines: tuned baselines, ``{name: BaselineResult}``.
        diagnostics: iterations, gradient norm, time, refinement history, stability limit.
    """

    problem: PowerLawProblem
    schedule: Schedule
    final_loss: float
    loss_steps: np.ndarray
    loss: np.ndarray
    phase: str = eqx.field(static=True)
    lr_max: float
    baselines: dict
    diagnostics: dict

    @property
    def horizon(self) -> int:
        return self.schedule.horizon

    def margins(self) -> dict[str, float]:
        """Relative gain over each baseline: ``baseline_loss / final_loss - 1``."""
        return {k: v.final_loss / self.final_loss - 1.0 for k, v in self.baselines.items()}

    def best_baseline(self) -> BaselineResult:
        return min(self.baselines.values(), key=lambda r: r.final_loss)

    def save(self, path) -> None:
        """Write a schedule file (format ``optsched.schedule/1``, see :mod:`optsched.io`)."""
        from .io import save

        save(self, path)


def knot_steps(horizon: int, knots: int) -> np.ndarray:
    """About ``knots`` block starts, geometric near ``t = 0`` and near ``t = T`` (ints, from 0).

    Levels ``knots = 16, 32, 64, ...`` are nested (each contains the previous one), so a
    refinement starts exactly from the coarser optimum.
    """
    if knots >= horizon:
        return np.arange(horizon)
    half = max(knots // 2, 2)
    head = np.geomspace(1, horizon / 2, half + 1)
    tail = horizon - np.geomspace(horizon / 2, 1, half + 1)
    steps = np.unique(np.round(np.concatenate([[0.0], head, tail])).astype(np.int64))
    return steps[steps <= horizon - 1]


def _final_log_loss(theta, spec: Spectrum, lr_max, batch, lengths):
    lr = lr_max * jax.nn.sigmoid(theta)
    loss = propagate_blocks(spec, lr, jnp.full_like(lr, batch), lengths)[0][-1]
    return jnp.where(jnp.isfinite(loss) & (loss > 0), jnp.log(loss), 1e3)


LBFGS_MEMORY = 30
"""Curvature pairs kept by L-BFGS (fewer iterations than optax's default 10, measured)."""


@eqx.filter_jit
def _lbfgs(theta0, spec, lr_max, batch, lengths, maxiter, gtol, ftol, memory: int = LBFGS_MEMORY):
    """L-BFGS on ``log L_T``; compiled once per (modes, padded knots) shape."""

    def f(theta):
        return _final_log_loss(theta, spec, lr_max, batch, lengths)

    opt = optax.lbfgs(memory_size=memory)
    value_and_grad = optax.value_and_grad_from_state(f)

    def step(carry):
        theta, state, value_prev, _, _, stall, i = carry
        value, grad = value_and_grad(theta, state=state)
        updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=f)
        # progress in log L_T below ftol counts as a stall; three in a row end the run
        stall = jnp.where(value_prev - value < ftol, stall + 1, 0)
        return (optax.apply_updates(theta, updates), state, value, value_prev,
                optax.tree.norm(grad), stall, i + 1)

    def cond(carry):
        *_, gnorm, stall, i = carry
        return (i < maxiter) & (gnorm > gtol) & (stall < 3)

    inf = jnp.asarray(jnp.inf, dtype=theta0.dtype)
    zero = jnp.asarray(0)
    init = (theta0, opt.init(theta0), inf, inf, inf, zero, zero)
    theta, *_, gnorm, _, iters = jax.lax.while_loop(cond, step, init)
    return theta, jnp.exp(f(theta)), iters, gnorm


def _optimise(steps, horizon, theta0, spec, lr_max, batch, *, pad, maxiter, gtol, ftol):
    """Optimise the block values; blocks are padded to ``pad`` with empty (identity) blocks."""
    k = len(steps)
    lengths = np.zeros(pad)
    lengths[:k] = block_lengths(steps, horizon)
    theta_pad = jnp.zeros(pad).at[:k].set(theta0)
    theta, value, iters, gnorm = _lbfgs(theta_pad, spec, jnp.asarray(lr_max), batch,
                                        jnp.asarray(lengths), jnp.asarray(maxiter),
                                        jnp.asarray(gtol), jnp.asarray(ftol))
    return theta[:k], float(value), int(iters), float(gnorm)


def _logit(lr, lr_max):
    # start below saturation: at the cap the sigmoid's slope would freeze a block in place
    p = np.clip(np.asarray(lr, dtype=float) / lr_max, 1e-6, 0.97)
    return jnp.asarray(np.log(p) - np.log1p(-p))


def solve(
    problem: PowerLawProblem,
    horizon: int,
    lr_max: float | None = None,
    *,
    knots: int = 16,
    max_knots: int = 128,
    rtol: float = 2e-4,
    maxiter: int = 1000,
    gtol: float = 1e-12,
    ftol: float = 1e-12,
    spec: Spectrum | None = None,
    progress: Callable[[str], None] | None = None,
) -> Solution:
    r"""The learning-rate schedule minimising :math:`L_T` under :math:`0 \le \eta_t \le` ``lr_max``.

    Args:
        problem: the model (any ``N``, infinite included).
        horizon: number of SGD steps ``T``.
        lr_max: learning-rate cap (default: 99% of the largest stable constant rate).
        knots: initial number of blocks; doubled until the optimum settles.
        max_knots: largest number of blocks.
        rtol: stop refining when the final loss improves by less than this (relative).
        maxiter, gtol, ftol: L-BFGS limits per refinement level: iterations, gradient norm, and
            the decrease of ``log L_T`` below which three iterations in a row end the level.
        spec: the modes to optimise on (default: quadrature accurate to ``lr_max * T``).
        progress: called with a short message after each stage (the CLI draws a bar from it).

    Returns:
        A :class:`Solution`.
    """
    horizon = int(horizon)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if lr_max is not None and not (math.isfinite(float(lr_max)) and float(lr_max) > 0):
        raise ValueError(f"lr_max must be a positive number, got {lr_max}")
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    if spec is None:
        probe = spectrum(problem, mode_grid(problem.features, b=float(problem.b), max_time=1.0))
        stable = float(max_stable_lr(probe, problem.batch))
        lr_cap = 0.99 * stable if lr_max is None else float(lr_max)
        grid = mode_grid(problem.features, b=float(problem.b), max_time=lr_cap * horizon)
        spec = spectrum(problem, grid)
    else:
        stable = float(max_stable_lr(spec, problem.batch))
        lr_cap = 0.99 * stable if lr_max is None else float(lr_max)
    batch = problem.batch

    say("tuning baselines")
    baselines = tune_baselines(problem, horizon, lr_cap, spec=spec)
    best = min(baselines.values(), key=lambda r: r.final_loss)
    say(f"best baseline {best.name}: {best.final_loss:.6g}")

    history = []
    prev_lr_fn = best.schedule.lr_at
    levels = [min(knots, horizon)]
    while levels[-1] < min(max_knots, horizon):
        levels.append(min(2 * levels[-1], max_knots, horizon))
    pad = max(len(knot_steps(horizon, k)) for k in levels)
    value = math.inf
    total_iters, gnorm = 0, math.nan
    for level, K in enumerate(levels):
        steps = knot_steps(horizon, K)
        theta0 = _logit(prev_lr_fn(jnp.asarray(steps)), lr_cap)
        last = level == len(levels) - 1
        # coarse levels only seed the next one: a looser tolerance is enough there
        theta, new_value, iters, gnorm = _optimise(
            steps, horizon, theta0, spec, lr_cap, batch, pad=pad,
            maxiter=maxiter if last else min(maxiter, 200), gtol=gtol,
            ftol=ftol if last else 1e3 * ftol)
        total_iters += iters
        history.append({"knots": int(len(steps)), "final_loss": new_value, "iterations": iters})
        say(f"{len(steps)} knots: {new_value:.6g} ({iters} iterations)")
        improved = value - new_value
        settled = value < math.inf and 0 <= improved < rtol * new_value
        value = min(value, new_value)
        sched = Schedule(steps, np.asarray(lr_cap * jax.nn.sigmoid(theta)), horizon=horizon,
                         interpolation="previous")
        prev_lr_fn = sched.lr_at
        if settled:
            break

    _, lengths = knot_blocks(sched)
    losses, _ = propagate_blocks(spec, sched.lr, jnp.full_like(sched.lr, batch), lengths)
    final = float(losses[-1])
    fallback = final > best.final_loss
    if fallback:  # never worse than the best baseline
        sched, final = best.schedule, best.final_loss
        loss_steps = np.array([0, horizon])
        loss = np.array([float(spec.initial_loss()), final])
    else:
        loss_steps = np.append(np.asarray(sched.steps), horizon)
        loss = np.concatenate([[float(spec.initial_loss())], np.asarray(losses)])
    diagnostics = {
        "iterations": total_iters,
        "gradient_norm": gnorm,
        "time_s": time.perf_counter() - t_start,
        "refinement": history,
        "modes": spec.size,
        "lr_stable_constant": stable,
        "fallback_to_baseline": bool(fallback),
    }
    return Solution(problem, sched, final, loss_steps, loss, problem.phase, lr_cap, baselines,
                    diagnostics)
