r"""``solve``: the optimal learning-rate schedule by optimal control of the loss dynamics.

Problem: minimise the final excess loss :math:`L_T` over :math:`0 \le \eta_t \le \eta_{max}`
(and optionally the momentum or the batch size, see :mod:`optsched.parameterisation`).

Method (direct shooting on knots):

1. *Controls.* Piecewise constant on ``K`` blocks whose boundaries are dense at both ends of
   training (geometric in ``t`` near 0 and in ``T - t`` near ``T``), where the optimum bends.
   Bounds hold by construction: :math:`\eta_k = \eta_{max}\,\sigma(\theta_k)`.
2. *Objective and gradient.* :math:`\log L_T` through the exact dynamics: the closed-form block
   propagation (:func:`~optsched.dynamics.sgd.propagate_blocks`, cost independent of ``T``) or,
   when it is cheaper (short horizons; momentum), the per-step recursion. Reverse mode through
   either is the discrete adjoint (co-state) recursion.
3. *Optimiser.* L-BFGS with a zoom line search and ``LBFGS_MEMORY`` curvature pairs
   (``optax.lbfgs``), compiled with ``jax.jit``. A level ends when ``log L_T`` improves by less
   than ``ftol`` three iterations in a row (1000x looser on the coarse levels, which only seed the
   next), or after ``maxiter`` iterations.
4. *Refinement.* Start at ``K = 16`` from the best tuned baseline, then double ``K``. The knot
   levels are nested, so each level starts exactly from the previous optimum; refinement stops
   when the optimum moves by less than ``rtol`` or ``K`` reaches ``max_knots``. Joint controls
   start from the learning-rate optimum.
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
from .controls import Schedule, knot_blocks
from .dynamics.momentum import MomentumForm, momentum_coefficients, momentum_losses
from .dynamics.sgd import max_stable_lr, propagate_blocks
from .parameterisation import (
    AbstractControls,
    Blocks,
    LearningRate,
    LearningRateBatch,
    LearningRateMomentum,
    sgd_method,
)
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
    momentum_form: MomentumForm = eqx.field(static=True, default="ema")

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


LBFGS_MEMORY = 30
"""Curvature pairs kept by L-BFGS (fewer iterations than optax's default 10, measured)."""


@eqx.filter_jit
def _lbfgs(controls: AbstractControls, theta0, spec, batch, blocks: Blocks, maxiter, gtol, ftol,
           memory: int = LBFGS_MEMORY):
    """L-BFGS on ``log L_T``; compiled once per (controls, modes, padded knots) shape."""

    def f(theta):
        return controls.log_final_loss(theta, spec, batch, blocks)

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


def _refine(controls: AbstractControls, start: Schedule, levels, horizon, spec, batch, *, pad,
            maxiter, gtol, ftol, rtol, say, history):
    """Optimise ``controls`` level by level (coarse to fine), each level from the previous one.

    Returns the last level's schedule and its final loss.
    """
    value, sched = math.inf, start
    for level, K in enumerate(levels):
        steps = knot_steps(horizon, K)
        blocks = Blocks.build(steps, horizon, pad)
        theta0 = controls.initial(sched, steps, pad, batch)
        last = level == len(levels) - 1
        # coarse levels only seed the next one: a looser tolerance is enough there
        theta, new_value, iters, gnorm = _lbfgs(
            controls, theta0, spec, jnp.asarray(batch), blocks, jnp.asarray(
                maxiter if last else min(maxiter, 200)), jnp.asarray(gtol),
            jnp.asarray(ftol if last else 1e3 * ftol))
        new_value, iters, gnorm = float(new_value), int(iters), float(gnorm)
        history.append({"controls": type(controls).__name__, "knots": int(len(steps)),
                        "final_loss": new_value, "iterations": iters, "gradient_norm": gnorm})
        say(f"{len(steps)} knots: {new_value:.6g} ({iters} iterations)")
        improved = value - new_value
        settled = value < math.inf and 0 <= improved < rtol * new_value
        value = min(value, new_value)
        sched = controls.schedule(theta, blocks, steps, horizon)
        if settled:
            break
    return sched, value


def solve(
    problem: PowerLawProblem,
    horizon: int,
    lr_max: float | None = None,
    *,
    momentum: bool = False,
    beta_max: float = 0.99,
    momentum_form: MomentumForm = "ema",
    batch_budget: float | None = None,
    batch_range: tuple[float, float] | None = None,
    knots: int = 16,
    max_knots: int = 128,
    rtol: float = 2e-4,
    maxiter: int = 300,
    gtol: float = 1e-12,
    ftol: float = 1e-12,
    spec: Spectrum | None = None,
    progress: Callable[[str], None] | None = None,
) -> Solution:
    r"""The schedule minimising the final loss :math:`L_T` under the bounds.

    Always optimises the learning rate, :math:`0 \le \eta_t \le` ``lr_max``. Optionally also:

    * ``momentum=True``: the momentum :math:`0 \le \beta_t \le` ``beta_max`` (``momentum_form``
      ``"ema"`` or ``"heavy_ball"``), through the exact per-step moment recursion (its cost grows
      with ``T``);
    * ``batch_budget=D``: the batch size :math:`m_{min} \le m_t \le m_{max}` with
      :math:`\sum_t m_t = D` exactly (``batch_range = (m_min, m_max)``, default
      ``(1, 16 D / T)``); the problem's own batch size is then ignored and baselines run at the
      constant batch ``D / T``.

    The learning rate is solved first with nested knot refinement; joint controls are then
    optimised on the finest knots (for momentum, then on twice as many) starting from that
    optimum (:math:`\beta = 0.05`, or the constant batch ``D/T``). The joint result is kept only
    if it beats the learning rate alone, so it is never worse (the diagnostics hold both).

    Args:
        problem: the model (any ``N``, infinite included).
        horizon: number of SGD steps ``T``.
        lr_max: learning-rate cap (default: 99% of the largest stable constant rate).
        momentum, beta_max, momentum_form: joint momentum schedule (see above).
        batch_budget, batch_range: joint batch-size schedule under a sample budget (see above).
        knots: initial number of blocks; doubled until the optimum settles.
        max_knots: largest number of blocks.
        rtol: stop refining when the final loss improves by less than this (relative).
        maxiter, gtol, ftol: L-BFGS limits per refinement level: iterations (300 changes the
            T = 1e6 easy-phase optimum by 6e-6 relative against 1000, and nothing at T <= 5000,
            measured), gradient norm, and
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
    if momentum and batch_budget is not None:
        raise ValueError("optimise momentum or a batch budget, not both at once")
    if momentum and not 0.0 < float(beta_max) < 1.0:
        raise ValueError(f"beta_max must be in (0, 1), got {beta_max}")
    momentum_coefficients(0.0, momentum_form)  # a bad form fails here, not after the solve
    if batch_budget is not None:
        problem, batch_range = _budget_problem(problem, horizon, batch_budget, batch_range)
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
    batch = float(problem.batch)

    say("tuning baselines")
    baselines = tune_baselines(problem, horizon, lr_cap, spec=spec)
    best = min(baselines.values(), key=lambda r: r.final_loss)
    say(f"best baseline {best.name}: {best.final_loss:.6g}")

    levels = [min(knots, horizon)]
    while levels[-1] < min(max_knots, horizon):
        levels.append(min(2 * levels[-1], max_knots, horizon))
    # the momentum schedule needs finer knots than the learning rate alone (measured: at T = 300,
    # 88 knots end 0.15% above the every-step optimum, 142 knots 0.04%): one more level
    joint_levels = levels[-1:]
    if momentum and levels[-1] < horizon:
        joint_levels.append(min(2 * levels[-1], horizon))
    pad = max(len(knot_steps(horizon, k)) for k in levels + joint_levels)
    opts = dict(pad=pad, maxiter=maxiter, gtol=gtol, ftol=ftol, rtol=rtol, say=say)
    history: list[dict] = []
    method = sgd_method(horizon, spec.size, pad)
    sched, _ = _refine(LearningRate(jnp.asarray(lr_cap), method=method), best.schedule, levels,
                       horizon, spec, batch, history=history, **opts)
    sgd_loss = _final_loss(sched, spec, batch, momentum_form)
    joint = None
    if momentum:
        say("adding momentum")
        joint = LearningRateMomentum(jnp.asarray(lr_cap), jnp.asarray(float(beta_max)),
                                     form=momentum_form, beta_start=jnp.asarray(0.05))
    elif batch_budget is not None:
        say("adding the batch size")
        joint = LearningRateBatch(jnp.asarray(lr_cap), jnp.asarray(float(batch_budget)),
                                  jnp.asarray(float(batch_range[0])),
                                  jnp.asarray(float(batch_range[1])), method=method)
    if joint is not None:
        joint_sched, _ = _refine(joint, sched, joint_levels, horizon, spec, batch,
                                 history=history, **opts)
        if _final_loss(joint_sched, spec, batch, momentum_form) < sgd_loss:
            sched = joint_sched

    loss_steps, losses = _loss_at_knots(sched, spec, batch, momentum_form)
    final = float(losses[-1])
    fallback = final > best.final_loss
    if fallback:  # never worse than the best baseline
        sched, final = best.schedule, best.final_loss
        loss_steps = np.array([0, horizon])
        losses = np.array([float(spec.initial_loss()), final])
    diagnostics = {
        "iterations": sum(h["iterations"] for h in history),
        "gradient_norm": history[-1]["gradient_norm"],
        "time_s": time.perf_counter() - t_start,
        "refinement": history,
        "modes": spec.size,
        "dynamics": method,
        "lr_stable_constant": stable,
        "lr_only_final_loss": sgd_loss,
        "fallback_to_baseline": bool(fallback),
    }
    if momentum:
        diagnostics.update(momentum_form=momentum_form, beta_max=float(beta_max))
    if batch_budget is not None:
        diagnostics.update(batch_budget=float(batch_budget), batch_range=list(batch_range))
    return Solution(problem, sched, final, loss_steps, losses, problem.phase, lr_cap, baselines,
                    diagnostics, momentum_form=momentum_form)


def _budget_problem(problem, horizon, budget, batch_range):
    """The problem at the constant batch ``D / T`` (the baselines' batch) and checked bounds."""
    budget = float(budget)
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"batch_budget must be a positive number of samples, got {budget}")
    mean = budget / horizon
    lo, hi = (1.0, 16.0 * mean) if batch_range is None else map(float, batch_range)
    if not 0 < lo < mean < hi:
        raise ValueError(
            f"batch_budget {budget:g} over {horizon} steps means a mean batch of {mean:g}, "
            f"outside batch_range ({lo:g}, {hi:g}); at an end of the range every batch is fixed")
    return PowerLawProblem.from_dict({**problem.to_dict(), "batch": mean}), (lo, hi)


def _final_loss(sched: Schedule, spec: Spectrum, batch, form) -> float:
    return float(_loss_at_knots(sched, spec, batch, form)[1][-1])


def _loss_at_knots(sched: Schedule, spec: Spectrum, batch, form):
    """Loss at ``0``, the block boundaries and ``T``: ``(steps, losses)``, numpy."""
    steps = np.append(np.asarray(sched.steps), sched.horizon)
    if sched.momentum is not None:
        lr, beta, m = sched.per_step(batch)
        losses = np.asarray(momentum_losses(spec, lr, beta, m, form=form))[steps]
        return steps, losses
    _, lengths = knot_blocks(sched)
    m = sched.batch if sched.batch is not None else jnp.full_like(sched.lr, batch)
    losses, _ = propagate_blocks(spec, sched.lr, m, lengths)
    return steps, np.concatenate([[float(spec.initial_loss())], np.asarray(losses)])
