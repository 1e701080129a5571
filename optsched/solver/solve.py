r"""``solve``: the optimal learning-rate schedule by optimal control of the loss dynamics.

Problem: minimise the final excess loss :math:`L_T` over :math:`0 \le \eta_t \le \eta_{max}`
(and optionally the momentum or the batch size, see :mod:`optsched.solver.parameterisation`).

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
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..dynamics.momentum import MomentumForm, momentum_coefficients, momentum_losses
from ..dynamics.sgd import max_stable_lr, propagate_blocks
from ..model.problem import PowerLawProblem
from ..model.spectrum import Spectrum, mode_grid, spectrum
from ..schedule import Schedule, knot_blocks
from .baselines import BaselineResult, tune_baselines
from .lbfgs import minimise
from .parameterisation import (
    AbstractControls,
    Blocks,
    LearningRate,
    LearningRateBatch,
    LearningRateMomentum,
    sgd_method,
)

__all__ = ["Solution", "solve", "solve_many", "knot_steps"]


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
        from ..io import save

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


def _lbfgs_run(controls: AbstractControls, theta0, spec, batch, blocks: Blocks, maxiter, gtol,
               ftol):
    """L-BFGS on ``log L_T`` from ``theta0``: ``(theta, L_T, iterations, gradient norm)``."""

    def f(theta):
        return controls.log_final_loss(theta, spec, batch, blocks)

    theta, iters, gnorm = minimise(f, theta0, maxiter, gtol, ftol)
    return theta, jnp.exp(f(theta)), iters, gnorm


# one compiled program per (controls, modes, padded knots) shape; the batched forms map every
# argument but gtol over a leading axis (the blocks too, unless all horizons are equal)
_lbfgs = eqx.filter_jit(_lbfgs_run)
_lbfgs_batched_shared_blocks = eqx.filter_jit(
    eqx.filter_vmap(_lbfgs_run, in_axes=(0, 0, 0, 0, None, 0, None, 0)))
_lbfgs_batched = eqx.filter_jit(eqx.filter_vmap(_lbfgs_run, in_axes=(0, 0, 0, 0, 0, 0, None, 0)))


def _stack(trees):
    """Stack equal-structure pytrees along a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def _item(tree, i: int):
    return jax.tree.map(lambda x: x[i], tree)


def _refine(controls: list[AbstractControls], starts: list[Schedule], levels: list[list[int]],
            horizons: list[int], specs: Spectrum, batch, *, pad, per_step, maxiter, gtol, ftol,
            rtol, say, histories) -> list[Schedule]:
    """Optimise each item's controls level by level (coarse to fine), from the previous level.

    Items are ``(controls[i], starts[i], levels[i], horizons[i])`` with the ``i``-th row of the
    stacked ``specs`` and ``batch``. The L-BFGS runs of one level are a single ``jax.vmap``-ed
    program (one item: the plain compiled program). An item stops when its optimum moves by less
    than ``rtol`` or its levels run out; it then rides along with ``maxiter = 0``. Returns each
    item's last schedule; ``histories[i]`` receives one record per level it ran.
    """
    B = len(controls)
    shared = len(set(horizons)) == 1
    values, done = [math.inf] * B, [False] * B
    scheds = list(starts)
    batch = jnp.asarray(batch, dtype=float)
    for j in range(max(len(lv) for lv in levels)):
        if all(done[i] or j >= len(levels[i]) for i in range(B)):
            break
        run = [not done[i] and j < len(levels[i]) for i in range(B)]
        last = [j >= len(levels[i]) - 1 for i in range(B)]
        steps = [knot_steps(T, lv[min(j, len(lv) - 1)])
                 for T, lv in zip(horizons, levels, strict=True)]
        blocks = [Blocks.build(steps[i], horizons[i], pad, per_step=per_step)
                  for i in range(1 if shared else B)]
        theta0 = [c.initial(sc, st, pad, float(m))
                  for c, sc, st, m in zip(controls, scheds, steps, batch, strict=True)]
        # coarse levels only seed the next one: a looser tolerance and iteration cap suffice
        cap = jnp.asarray([(maxiter if last[i] else min(maxiter, 200)) if run[i] else 0
                           for i in range(B)])
        tol = jnp.asarray([ftol if last[i] else 1e3 * ftol for i in range(B)])
        if B == 1:
            out = _lbfgs(controls[0], theta0[0], _item(specs, 0), batch[0], blocks[0], cap[0],
                         jnp.asarray(gtol), tol[0])
            out = jax.tree.map(lambda x: x[None], out)
        else:
            fn = _lbfgs_batched_shared_blocks if shared else _lbfgs_batched
            out = fn(_stack(controls), _stack(theta0), specs, batch,
                     blocks[0] if shared else _stack(blocks), cap, jnp.asarray(gtol), tol)
        theta, new_values, iters, gnorms = (np.asarray(x) for x in out)
        for i in np.flatnonzero(run):
            new = float(new_values[i])
            histories[i].append({"controls": type(controls[i]).__name__,
                                 "knots": int(len(steps[i])), "final_loss": new,
                                 "iterations": int(iters[i]), "gradient_norm": float(gnorms[i])})
            if B == 1:
                say(f"{len(steps[i])} knots: {new:.6g} ({int(iters[i])} iterations)")
            settled = values[i] < math.inf and 0 <= values[i] - new < rtol * new
            done[i] = settled or last[i]
            values[i] = min(values[i], new)
            scheds[i] = controls[i].schedule(theta[i], blocks[0 if shared else i], steps[i],
                                             horizons[i])
        if B > 1:
            say(f"level {j + 1}: {int(np.sum(run))} of {B} solves refined, "
                f"{sum(done)} settled")
    return scheds


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
    horizon = _check_horizon(horizon)
    _check_lr_max(lr_max)
    if momentum and batch_budget is not None:
        raise ValueError("optimise momentum or a batch budget, not both at once")
    if momentum and not 0.0 < float(beta_max) < 1.0:
        raise ValueError(f"beta_max must be in (0, 1), got {beta_max}")
    momentum_coefficients(0.0, momentum_form)  # a bad form fails here, not after the solve
    if batch_budget is not None:
        problem, batch_range = _budget_problem(problem, horizon, batch_budget, batch_range)
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    spec, stable, lr_cap = _modes(problem, horizon, lr_max, spec)
    batch = float(problem.batch)

    say("tuning baselines")
    baselines = tune_baselines(problem, horizon, lr_cap, spec=spec)
    best = min(baselines.values(), key=lambda r: r.final_loss)
    say(f"best baseline {best.name}: {best.final_loss:.6g}")

    levels = _levels(horizon, knots, max_knots)
    # the momentum schedule needs finer knots than the learning rate alone (measured: at T = 300,
    # 88 knots end 0.15% above the every-step optimum, 142 knots 0.04%): one more level
    joint_levels = levels[-1:]
    if momentum and levels[-1] < horizon:
        joint_levels.append(min(2 * levels[-1], horizon))
    pad = max(len(knot_steps(horizon, k)) for k in levels + joint_levels)
    method = sgd_method(horizon, spec.size, pad)
    opts = dict(pad=pad, per_step=True, maxiter=maxiter, gtol=gtol, ftol=ftol, rtol=rtol,
                say=say, histories=[[]])
    specs = _stack([spec])
    [sched] = _refine([LearningRate(jnp.asarray(lr_cap), method=method)], [best.schedule],
                      [levels], [horizon], specs, [batch], **opts)
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
        [joint_sched] = _refine([joint], [sched], [joint_levels], [horizon], specs, [batch],
                                **opts)
        if _final_loss(joint_sched, spec, batch, momentum_form) < sgd_loss:
            sched = joint_sched

    extra = {}
    if momentum:
        extra.update(momentum_form=momentum_form, beta_max=float(beta_max))
    if batch_budget is not None:
        extra.update(batch_budget=float(batch_budget), batch_range=list(batch_range))
    return _solution(problem, sched, spec, baselines, lr_cap, momentum_form,
                     history=opts["histories"][0], time_s=time.perf_counter() - t_start,
                     modes=spec.size, dynamics=method, lr_stable_constant=stable,
                     lr_only_final_loss=sgd_loss, **extra)


def solve_many(
    problems: PowerLawProblem | Sequence[PowerLawProblem],
    horizons: int | Sequence[int],
    lr_max: float | None | Sequence[float | None] = None,
    *,
    knots: int = 16,
    max_knots: int = 128,
    rtol: float = 2e-4,
    maxiter: int = 300,
    gtol: float = 1e-12,
    ftol: float = 1e-12,
    strategy: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> list[Solution]:
    r"""Optimal learning-rate schedules of many ``(problem, horizon)`` pairs, compiled once.

    ``problems``, ``horizons`` and ``lr_max`` broadcast against each other (a single value, or
    one per solve). Each solve is the one :func:`solve` would do (same baselines, knots,
    refinement and stopping rule, same guarantee; the same final loss to rounding). The modes
    of all problems are padded to a common count with inert nodes (:math:`\lambda = 0`,
    :math:`c_0 = 0`: they never move and carry no loss), so every solve has the same shapes and
    the optimiser is compiled once, not once per problem. Use it for phase diagrams and sweeps
    over ``T``.

    ``strategy``:

    * ``"vmap"``: the L-BFGS runs of each refinement level are one ``jax.vmap``-ed program
      (horizons that differ then use the closed-form block propagation, whose blocks have one
      shape for every ``T``). Under ``vmap`` every solve runs as many iterations as the slowest
      one (the finished ones are masked), so it pays off where the batch runs in parallel (GPU,
      TPU);
    * ``"loop"``: the solves one after another, sharing one compiled program (the padded modes
      give every problem the same shapes); faster on CPU, where a batch is not parallel;
    * ``"auto"`` (default): ``"loop"`` on CPU, ``"vmap"`` elsewhere.

    ``benchmarks/bench_many.py`` measures both against plain :func:`solve` calls.
    Only the learning rate is optimised; for momentum or batch schedules call :func:`solve`.

    Returns:
        One :class:`Solution` per pair, in order.
    """
    pairs = _broadcast(problems, horizons, lr_max)
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    prepared = [_modes(p, _check_horizon(T), _check_lr_max(cap), None) for p, T, cap in pairs]
    size = max(spec.size for spec, _, _ in prepared)
    max_time = min(spec.max_time for spec, _, _ in prepared)
    padded = [_pad_modes(spec, size, max_time) for spec, _, _ in prepared]
    horizons = [int(T) for _, T, _ in pairs]
    baselines = []
    for i, ((problem, T, _), (_, _, cap)) in enumerate(zip(pairs, prepared, strict=True)):
        say(f"tuning baselines {i + 1}/{len(pairs)}")
        baselines.append(tune_baselines(problem, T, cap, spec=padded[i]))
    starts = [min(b.values(), key=lambda r: r.final_loss).schedule for b in baselines]
    levels = [_levels(T, knots, max_knots) for T in horizons]
    pad = max(len(knot_steps(T, k)) for T, lv in zip(horizons, levels, strict=True) for k in lv)
    if strategy == "auto":
        strategy = "loop" if jax.default_backend() == "cpu" else "vmap"
    shared = len(set(horizons)) == 1
    methods = [sgd_method(T, size, pad) for T in horizons]
    if strategy == "vmap" and not shared:
        methods = ["blocks"] * len(pairs)  # one block shape for every horizon
    controls = [LearningRate(jnp.asarray(cap), method=method)
                for (_, _, cap), method in zip(prepared, methods, strict=True)]
    histories = [[] for _ in pairs]
    batches = [float(p.batch) for p, _, _ in pairs]
    opts = dict(pad=pad, maxiter=maxiter, gtol=gtol, ftol=ftol, rtol=rtol, say=say)
    if strategy == "vmap":
        scheds = _refine(controls, starts, levels, horizons, _stack(padded), batches,
                         per_step=methods[0] == "scan", histories=histories, **opts)
    elif strategy == "loop":
        scheds = []
        for i in range(len(pairs)):
            say(f"solve {i + 1}/{len(pairs)}")
            scheds += _refine([controls[i]], [starts[i]], [levels[i]], [horizons[i]],
                              _stack([padded[i]]), [batches[i]], per_step=methods[i] == "scan",
                              histories=[histories[i]], **opts)
    else:
        raise ValueError(f"strategy must be 'auto', 'vmap' or 'loop', got {strategy!r}")
    elapsed = time.perf_counter() - t_start
    out = []
    for i, (problem, _, _) in enumerate(pairs):
        spec, stable, cap = prepared[i]
        out.append(_solution(problem, scheds[i], spec, baselines[i], cap, "ema",
                             history=histories[i], time_s=elapsed, batched=len(pairs),
                             strategy=strategy, modes=spec.size, dynamics=methods[i],
                             lr_stable_constant=stable))
    return out


def _broadcast(problems, horizons, lr_max) -> list[tuple]:
    """``(problem, horizon, lr_max)`` triples; scalars repeat to the common length."""
    def seq(x, scalar):
        return [x] if isinstance(x, scalar) or x is None else list(x)

    cols = [seq(problems, PowerLawProblem), seq(horizons, (int, np.integer)),
            seq(lr_max, (int, float, np.floating, np.integer))]
    names = ("problems", "horizons", "lr_max")
    for name, c in zip(names, cols, strict=True):
        if not c:
            raise ValueError(f"{name} is empty")
    lengths = {len(c) for c in cols} - {1}
    if len(lengths) > 1:
        counts = ", ".join(f"{name} {len(c)}" for name, c in zip(names, cols, strict=True))
        raise ValueError(f"entries per solve do not match ({counts}); give a single value or "
                         "one per solve")
    n = max(len(c) for c in cols)
    return [tuple(c[i] if len(c) > 1 else c[0] for c in cols) for i in range(n)]


def _check_horizon(horizon) -> int:
    if int(horizon) != horizon or int(horizon) < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon}")
    return int(horizon)


def _check_lr_max(lr_max):
    if lr_max is not None and not (math.isfinite(float(lr_max)) and float(lr_max) > 0):
        raise ValueError(f"lr_max must be a positive number, got {lr_max}")
    return lr_max


def _modes(problem, horizon, lr_max, spec) -> tuple[Spectrum, float, float]:
    """The modes to optimise on, the largest stable constant rate, and the cap used."""
    if spec is None:
        probe = spectrum(problem, mode_grid(problem.features, b=float(problem.b), max_time=1.0))
        stable = float(max_stable_lr(probe, problem.batch))
        lr_cap = 0.99 * stable if lr_max is None else float(lr_max)
        grid = mode_grid(problem.features, b=float(problem.b), max_time=lr_cap * horizon)
        return spectrum(problem, grid), stable, lr_cap
    stable = float(max_stable_lr(spec, problem.batch))
    return spec, stable, 0.99 * stable if lr_max is None else float(lr_max)


def _pad_modes(spec: Spectrum, size: int, max_time: float) -> Spectrum:
    """``spec`` with inert modes appended up to ``size`` (``lambda = 0``: they never move, add no
    loss and no noise; unit weight keeps the block propagation's ``1/sqrt(w)`` finite)."""
    extra = size - spec.size

    def grow(x, fill):
        return jnp.concatenate([x, jnp.full(extra, fill, dtype=x.dtype)])

    return Spectrum(grow(spec.lam, 0.0), grow(spec.target, 0.0), grow(spec.weight, 1.0),
                    spec.offset, spec.noise, max_time=max_time)


def _levels(horizon: int, knots: int, max_knots: int) -> list[int]:
    levels = [min(knots, horizon)]
    while levels[-1] < min(max_knots, horizon):
        levels.append(min(2 * levels[-1], max_knots, horizon))
    return levels


def _solution(problem, sched, spec, baselines, lr_cap, form, *, history, time_s,
              **diagnostics) -> Solution:
    """Package a solved schedule, falling back to the best baseline if it is not better."""
    best = min(baselines.values(), key=lambda r: r.final_loss)
    batch = float(problem.batch)
    loss_steps, losses = _loss_at_knots(sched, spec, batch, form)
    final = float(losses[-1])
    fallback = final > best.final_loss
    if fallback:  # never worse than the best baseline
        sched, final = best.schedule, best.final_loss
        loss_steps = np.array([0, sched.horizon])
        losses = np.array([float(spec.initial_loss()), final])
    diagnostics = {
        "iterations": sum(h["iterations"] for h in history),
        "gradient_norm": history[-1]["gradient_norm"],
        "time_s": time_s,
        "refinement": history,
        **diagnostics,
        "fallback_to_baseline": bool(fallback),
    }
    return Solution(problem, sched, final, loss_steps, losses, problem.phase, lr_cap, baselines,
                    diagnostics, momentum_form=form)


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
