r"""``solve``: the schedule minimising a loss model's predicted final loss, for every model.

Problem: minimise the predicted final loss :math:`L_T` over :math:`0 \le \eta_t \le \eta_{max}`
(and optionally the momentum or the batch size, see :mod:`optsched.solver.parameterisation`),
for any :class:`~optsched.loss_models.base.AbstractLossModel`: the power-law random-feature
problem, a model fitted to pilot runs, the multi-power law, the convex bound.

Method (direct shooting on knots, :class:`LBFGS` holds its settings):

1. *Controls.* Piecewise constant on ``K`` blocks whose boundaries are dense at both ends of
   training (geometric in ``t`` near 0 and in ``T - t`` near ``T``), where the optimum bends.
   Bounds hold by construction: :math:`\eta_k = \eta_{max}\,\sigma(\theta_k)` (above a floor
   :math:`\eta_{min}` when the controls set one, :class:`LearningRate`).
2. *Objective and gradient.* :math:`\log L_T` through the model's objective
   (:meth:`~optsched.loss_models.base.AbstractLossModel.objective`); for the power-law model the
   exact dynamics, whose reverse mode is the discrete adjoint (co-state) recursion.
3. *Optimiser.* L-BFGS with a zoom line search (``optax.lbfgs``), compiled with ``jax.jit``. A
   level ends when ``log L_T`` improves by less than ``ftol`` three iterations in a row (1000x
   looser on the coarse levels, which only seed the next), or after ``maxiter`` iterations.
   When the value rises (a failed line search) or is not finite, L-BFGS restarts from the best
   point (:func:`~optsched.solver.lbfgs.minimise`).
4. *Refinement.* Start at ``K = knots`` from the best tuned baseline, then double ``K``. The
   levels are nested, so each starts exactly from the previous optimum; refinement stops when
   the optimum moves by less than ``rtol`` or ``K`` reaches ``max_knots``. Joint controls start
   from the learning-rate optimum.
5. *Guarantee.* All baselines are tuned first (the same code for every model,
   :func:`~optsched.solver.baselines.tune_baselines`, under the same floor); if the optimum
   were not better than the best of them, the best baseline is returned
   (``stats["fallback_to_baseline"]``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import distributed
from .._precision import with_float64
from ..loss_models.base import AbstractLossModel, AbstractObjective
from ..model.problem import PowerLawProblem
from ..model.spectrum import Spectrum
from ..schedule import Blocks, Interpolation, Schedule, check_interpolation
from .baselines import tune_baselines
from .lbfgs import minimise
from .parameterisation import (
    AbstractControls,
    LearningRate,
    LearningRateBatch,
    LearningRateMomentum,
)
from .solution import RESULTS, Solution, SolveError

__all__ = ["LBFGS", "MEMORY_LIMIT", "STILL_MOVING", "knot_steps", "solve", "solve_many"]

STILL_MOVING = 1e-3
"""A solve ends in ``RESULTS.max_steps_reached`` when L-BFGS stops at ``maxiter`` on the finest
knots while its last 50-100 iterations still lowered the loss by more than this fraction: the
optimum was far from settled. (A finest level that hits ``maxiter`` moving less is the usual end
of a long horizon's solve: at T = 1e6 more iterations change the loss by 6e-6. The level's gain
over the one before is no test: there the finer knots, not the iterations, buy it.)"""


class LBFGS(eqx.Module):
    """The optimiser's settings: L-BFGS on knots, refined from coarse to fine.

    Attributes:
        knots: blocks of the first level; doubled until the optimum settles.
        max_knots: blocks of the finest level.
        rtol: refinement stops when the final loss improves by less than this (relative).
        maxiter: L-BFGS iterations per level (300 changes the T = 1e6 easy-phase optimum by 6e-6
            relative against 1000, and nothing at T <= 5000, measured).
        gtol: gradient norm at which a level ends.
        ftol: a level ends when ``log L_T`` decreases by less than this three times in a row.
    """

    knots: int = eqx.field(static=True, default=16)
    max_knots: int = eqx.field(static=True, default=128)
    rtol: float = eqx.field(static=True, default=2e-4)
    maxiter: int = eqx.field(static=True, default=300)
    gtol: float = eqx.field(static=True, default=1e-12)
    ftol: float = eqx.field(static=True, default=1e-12)

    def __check_init__(self):
        for name in ("knots", "max_knots", "maxiter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_knots < self.knots:
            raise ValueError(f"max_knots ({self.max_knots}) must be >= knots ({self.knots})")
        if self.max_knots > 4096:
            raise ValueError(f"max_knots must be at most 4096, got {self.max_knots}")
        for name in ("rtol", "gtol", "ftol"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")


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


def _lbfgs_run(controls: AbstractControls, theta0, objective, blocks: Blocks, maxiter, gtol, ftol):
    """L-BFGS on ``log L_T`` from ``theta0``: ``(theta, L_T, iterations, gradient norm, the
    fall of log L_T over the last 50-100 iterations)`` (:func:`~optsched.solver.lbfgs.minimise`)."""

    def f(theta):
        return controls.log_final_loss(theta, objective, blocks)

    theta, value, iters, gnorm, recent = minimise(f, theta0, maxiter, gtol, ftol)
    return theta, jnp.exp(value), iters, gnorm, recent


# one compiled program per (controls, objective, padded knots) shape; the batched forms map every
# argument but gtol over a leading axis (the blocks too, unless all horizons are equal)
_lbfgs = eqx.filter_jit(_lbfgs_run)
_lbfgs_batched_shared_blocks = eqx.filter_jit(
    eqx.filter_vmap(_lbfgs_run, in_axes=(0, 0, 0, None, 0, None, 0))
)
_lbfgs_batched = eqx.filter_jit(eqx.filter_vmap(_lbfgs_run, in_axes=(0, 0, 0, 0, 0, None, 0)))


def _over_devices(trees, maxiter):
    """Spread batched inputs over the local devices along their leading (batch) axis.

    ``trees`` are stacked pytrees and ``maxiter`` the per-solve iteration caps, all with the
    batch of ``B`` solves on axis 0. On one device they are returned as they are. On ``D > 1``
    devices the batch is padded to a multiple of ``D`` by repeating its last entry with an
    iteration cap of 0 (padded solves stop at once), and every array is placed with a
    ``NamedSharding`` over a one-axis mesh, so the compiled program runs each device's share of
    the solves; the caller keeps the first ``B`` results. Results equal the single-device ones.
    """
    devices = jax.local_devices()
    if len(devices) == 1:
        return trees, maxiter
    size = maxiter.shape[0]
    extra = -(-size // len(devices)) * len(devices) - size
    mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
    batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))

    def spread(x, tail):
        return jax.device_put(jnp.concatenate([x] + [tail] * extra), batch)

    trees = jax.tree.map(lambda x: spread(x, x[-1:]), trees)
    return trees, spread(maxiter, jnp.zeros_like(maxiter[-1:]))


def _stack(trees):
    """Stack equal-structure pytrees along a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


def _refine(
    controls: list[AbstractControls],
    starts: list[Schedule],
    levels: list[list[int]],
    horizons: list[int],
    objectives: list[AbstractObjective],
    batch,
    *,
    pad,
    per_step,
    optimiser: LBFGS,
    say,
    histories,
    interpolation: Interpolation = "previous",
) -> list[Schedule]:
    """Optimise each item's controls level by level (coarse to fine), from the previous level.

    Items are ``(controls[i], starts[i], levels[i], horizons[i], objectives[i])``; ``batch[i]``
    seeds a batch-size control. The L-BFGS runs of one level are a single ``jax.vmap``-ed
    program (one item: the plain compiled program). An item stops when its optimum moves by less
    than ``rtol`` or its levels run out; it then rides along with ``maxiter = 0``. Returns each
    item's last schedule; ``histories[i]`` receives one record per level it ran.
    """
    B = len(controls)
    shared = len(set(horizons)) == 1
    values, done = [math.inf] * B, [False] * B
    scheds = list(starts)
    maxiter, gtol, ftol, rtol = (optimiser.maxiter, optimiser.gtol, optimiser.ftol, optimiser.rtol)
    batch = np.asarray(batch, dtype=float)
    for j in range(max(len(lv) for lv in levels)):
        if all(done[i] or j >= len(levels[i]) for i in range(B)):
            break
        run = [not done[i] and j < len(levels[i]) for i in range(B)]
        last = [j >= len(levels[i]) - 1 for i in range(B)]
        steps = [
            knot_steps(T, lv[min(j, len(lv) - 1)]) for T, lv in zip(horizons, levels, strict=True)
        ]
        blocks = [
            Blocks.build(steps[i], horizons[i], pad, per_step=per_step, interpolation=interpolation)
            for i in range(1 if shared else B)
        ]
        theta0 = [
            c.initial(sc, st, pad, float(m))
            for c, sc, st, m in zip(controls, scheds, steps, batch, strict=True)
        ]
        # coarse levels only seed the next one: a looser tolerance and iteration cap suffice
        # NumPy, not eager JAX: each eager operation would compile a program of its own
        cap = np.asarray(
            [(maxiter if last[i] else min(maxiter, 200)) if run[i] else 0 for i in range(B)]
        )
        tol = np.asarray([ftol if last[i] else 1e3 * ftol for i in range(B)])
        if B == 1:
            out = _lbfgs(
                controls[0], theta0[0], objectives[0], blocks[0], cap[0], np.float64(gtol), tol[0]
            )
            out = tuple(np.asarray(x)[None] for x in out)
        else:
            fn = _lbfgs_batched_shared_blocks if shared else _lbfgs_batched
            mapped = (
                _stack(controls),
                _stack(theta0),
                _stack(objectives),
                None if shared else _stack(blocks),
                tol,
            )
            (c, t0, obj, blk, tl), mi = _over_devices(mapped, cap)
            out = fn(c, t0, obj, blocks[0] if shared else blk, mi, jnp.asarray(gtol), tl)
            out = jax.tree.map(lambda x: x[:B], out)
        theta, new_values, iters, gnorms, recent = (np.asarray(x) for x in out)
        for i in np.flatnonzero(run):
            new = float(new_values[i])
            histories[i].append(
                {
                    "controls": type(controls[i]).__name__,
                    "knots": int(len(steps[i])),
                    "final_loss": new,
                    "iterations": int(iters[i]),
                    "gradient_norm": float(gnorms[i]),
                    "hit_maxiter": bool(run[i] and int(iters[i]) >= int(cap[i])),
                    # None before 100 iterations (JSON has no inf)
                    "recent_log_loss_fall": float(recent[i]) if np.isfinite(recent[i]) else None,
                    "settled": False,
                }
            )
            if B == 1:
                say(f"{len(steps[i])} knots: {new:.6g} ({int(iters[i])} iterations)")
            settled = values[i] < math.inf and 0 <= values[i] - new < rtol * new
            histories[i][-1]["settled"] = bool(settled)
            done[i] = settled or last[i]
            values[i] = min(values[i], new)
            scheds[i] = controls[i].schedule(
                theta[i], blocks[0 if shared else i], steps[i], horizons[i], interpolation
            )
        if B > 1:
            say(f"level {j + 1}: {int(np.sum(run))} of {B} solves refined, {sum(done)} settled")
    return scheds


def _as_controls(controls) -> AbstractControls:
    """``None`` -> the learning rate under the model's cap; a number -> that cap."""
    if controls is None:
        return LearningRate()
    if isinstance(controls, AbstractControls):
        return controls
    if isinstance(controls, bool) or not isinstance(controls, int | float | np.number):
        raise TypeError(
            "controls must be LearningRate, LearningRateMomentum, LearningRateBatch, "
            f"a learning-rate cap or None, got {type(controls).__name__}"
        )
    return LearningRate(lr_max=float(controls))


def _prepare(
    model: AbstractLossModel, horizon, controls
) -> tuple[AbstractLossModel, int, AbstractControls, float]:
    """Check the inputs; resolve the cap and (batch budgets) the model's constant batch."""
    if not isinstance(model, AbstractLossModel):
        raise TypeError(
            f"model must be a loss model (PowerLawProblem, FittedProblem, "
            f"MultiPowerLaw, ConvexBound, ...), got {type(model).__name__}"
        )
    horizon = _check_horizon(horizon)
    needed = _bytes_per_step() * horizon
    if needed > MEMORY_LIMIT:
        raise ValueError(
            f"horizon {horizon} needs about {needed / 2**30:.0f} GiB for the baselines' per-step "
            f"rates (the limit is {MEMORY_LIMIT / 2**30:.0f} GiB, a horizon of about "
            f"{MEMORY_LIMIT // _bytes_per_step():.1e}); solve a shorter horizon and stretch it "
            "with to_optax(total_steps=...)"
        )
    controls = _as_controls(controls)
    missing = controls.needs - model.controls
    if missing:
        raise ValueError(
            f"{type(model).__name__} cannot predict {', '.join(sorted(missing))} "
            f"schedules; solve its learning rate alone (LearningRate)"
        )
    if controls.lr_max is not None:
        _check_lr_max(float(controls.lr_max))
    if isinstance(controls, LearningRateBatch):
        model, controls = _budget_problem(model, horizon, controls)
    lr_max = model.default_lr_max() if controls.lr_max is None else float(controls.lr_max)
    return model, horizon, controls.with_lr_max(lr_max), lr_max


@with_float64
def solve(
    model: AbstractLossModel,
    horizon: int,
    controls: AbstractControls | float | None = None,
    *,
    optimiser: LBFGS = LBFGS(),
    interpolation: Interpolation = "previous",
    throw: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Solution:
    r"""The schedule minimising ``model``'s predicted final loss after ``horizon`` steps.

    Always optimises the learning rate, :math:`0 \le \eta_t \le \eta_{max}`. The
    ``controls`` say what else, for models that can predict it (the power-law problem):

    * :class:`LearningRate` ``(lr_max)``: the learning rate alone (a bare number is its cap;
      ``None`` the model's own cap: 99% of the largest stable constant rate for the power-law
      problems);
    * :class:`LearningRateMomentum` ``(lr_max, beta_max, form)``: also the momentum
      :math:`0 \le \beta_t \le \beta_{max}` (``form`` ``"ema"`` or ``"heavy_ball"``), through the
      exact moment recursion: per step for short horizons, in closed form per block (cost
      ``O(log T)`` per block) for long ones;
    * :class:`LearningRateBatch` ``(lr_max, budget, batch_min, batch_max)``: also the batch size
      :math:`m_{min} \le m_t \le m_{max}` with :math:`\sum_t m_t = D` exactly (default range
      ``(1, 16 D / T)``); the problem's own batch size is replaced by ``D / T``, at which the
      baselines run.

    The learning rate is solved first with nested knot refinement; joint controls are then
    optimised on the finest knots (momentum: on twice as many) from that optimum. The joint
    result is kept only if it beats the learning rate alone (``stats`` holds both).

    Args:
        model: the loss model (:class:`~optsched.PowerLawProblem` at any width, infinite
            included; :class:`~optsched.FittedProblem`; :class:`~optsched.MultiPowerLaw`;
            :class:`~optsched.ConvexBound`; any :class:`~optsched.AbstractLossModel`).
        horizon: number of steps ``T``.
        controls: what to optimise and its bounds (above), in the model's units.
        optimiser: :class:`LBFGS` settings (knots, refinement, iterations, tolerances).
        interpolation: ``"previous"`` (controls constant between knots, the default: exact in
            closed form per block, cost independent of ``T``) or ``"linear"`` (smooth: controls
            linear between knots, evaluated step by step, so the exported per-step schedule is
            exactly the optimised one; cost grows with ``T``; not with a batch budget).
        throw: raise :class:`SolveError` when the solve did not succeed; with ``False`` the
            :attr:`Solution.result` code says so instead (for batched and scripted solves).
        progress: called with a short message after each stage (the CLI draws a bar from it).

    Returns:
        A :class:`Solution` whose schedule is in the model's units.
    """
    t_start = time.perf_counter()
    check_interpolation(interpolation)
    model, horizon, controls, lr_max = _prepare(model, horizon, controls)
    if interpolation == "linear" and isinstance(controls, LearningRateBatch):
        raise ValueError(
            "a batch budget is solved with piecewise-constant controls (interpolation="
            "'previous'): the budget is kept exactly per block"
        )
    say = progress or (lambda msg: None)
    levels = _levels(horizon, optimiser.knots, optimiser.max_knots)
    # the momentum schedule needs finer knots than the learning rate alone (measured: at T = 300,
    # 88 knots end 0.15% above the every-step optimum, 142 knots 0.04%): one more level
    joint_levels = levels[-1:]
    if isinstance(controls, LearningRateMomentum) and levels[-1] < horizon:
        joint_levels.append(min(2 * levels[-1], horizon))
    pad = max(len(knot_steps(horizon, k)) for k in levels + joint_levels)
    objective = model.objective(horizon, lr_max, max_blocks=pad)

    say("tuning baselines")
    baselines = tune_baselines(objective, horizon, lr_max, lr_min=_floor(controls))
    best = min(baselines.values(), key=lambda r: r.final_loss)
    say(f"best baseline {best.name}: {best.final_loss:.6g}")
    stats = {
        "method": getattr(objective, "method", "per_step")
        if interpolation == "previous"
        else "scan",
        "lr_max": lr_max,
        "lr_min": _floor(controls),
        "interpolation": interpolation,
    }
    if not math.isfinite(best.final_loss):
        return _finish(
            _solution(
                model,
                best.schedule,
                objective,
                baselines,
                lr_max,
                [],
                t_start,
                RESULTS.nonfinite_loss,
                **stats,
            ),
            throw,
        )

    batch = float(getattr(model, "batch", 1.0))
    history: list[dict] = []
    refine: dict[str, Any] = dict(
        pad=pad,
        per_step=True,
        optimiser=optimiser,
        say=say,
        histories=[history],
        interpolation=interpolation,
    )
    # the learning rate first (as given, or plain before the other controls are added)
    lr_only = controls if isinstance(controls, LearningRate) else LearningRate(lr_max=lr_max)
    lr_only = lr_only.with_lr_max(lr_max)
    [sched] = _refine(
        [lr_only], [best.schedule], [levels], [horizon], [objective], [batch], **refine
    )
    lr_loss = _final_loss(objective, sched)
    if not isinstance(controls, LearningRate):
        say(
            "adding "
            + ("momentum" if isinstance(controls, LearningRateMomentum) else "the batch size")
        )
        [joint] = _refine(
            [controls], [sched], [joint_levels], [horizon], [objective], [batch], **refine
        )
        if _final_loss(objective, joint) < lr_loss:
            sched = joint
        stats.update(lr_only_final_loss=lr_loss, **_control_stats(controls))
    return _finish(
        _solution(model, sched, objective, baselines, lr_max, history, t_start, None, **stats),
        throw,
    )


def _control_stats(controls) -> dict:
    if isinstance(controls, LearningRateMomentum):
        return {"momentum_form": controls.form, "beta_max": float(controls.beta_max)}
    if isinstance(controls, LearningRateBatch):
        return {
            "batch_budget": float(controls.budget),
            "batch_range": [
                float(controls.batch_min),
                float(controls._span() + controls.batch_min),
            ],
        }
    return {}


def _finish(solution: Solution, throw: bool) -> Solution:
    if throw and not solution.succeeded:
        raise SolveError(RESULTS[solution.result], solution)
    return solution


@with_float64
def solve_many(
    models: AbstractLossModel | Sequence[AbstractLossModel],
    horizons: int | Sequence[int],
    controls: LearningRate | float | None | Sequence[LearningRate | float | None] = None,
    *,
    optimiser: LBFGS = LBFGS(),
    strategy: str = "auto",
    throw: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[Solution]:
    r"""Optimal learning-rate schedules of many ``(model, horizon)`` pairs, compiled once.

    ``models``, ``horizons`` and ``controls`` broadcast against each other (a single value, or
    one per solve). Each solve is the one :func:`solve` would do (same baselines, knots,
    refinement and stopping rule, same guarantee; the same final loss to rounding). The modes
    of power-law problems are padded to a common count with inert nodes
    (:math:`\lambda = 0`, :math:`c_0 = 0`: they never move and carry no loss), so every solve
    has the same shapes and the optimiser is compiled once, not once per problem. Use it for
    phase diagrams and sweeps over ``T``.

    ``strategy``:

    * ``"vmap"``: the L-BFGS runs of each refinement level are one ``jax.vmap``-ed program
      (horizons that differ then use the closed-form block propagation, whose blocks have one
      shape for every ``T``). Under ``vmap`` every solve runs as many iterations as the slowest
      one (the finished ones are masked), so it pays off where the batch runs in parallel (GPU,
      TPU); power-law problems only;
    * ``"loop"``: the solves one after another, sharing one compiled program; faster on CPU,
      where a batch is not parallel;
    * ``"auto"`` (default): ``"loop"`` on CPU (even with several host devices: measured
      3.4x faster than the sharded ``"vmap"`` on 2 cores, ``benchmarks/bench_scale.py``),
      ``"vmap"`` elsewhere.

    With several local devices (GPUs, TPU cores, or host CPU devices from
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) the ``"vmap"`` batch is padded to a
    multiple of the device count and spread over a one-axis mesh with ``jax.sharding``; the
    results equal the single-device ones (``tests/test_sharding.py``).

    In a multi-process run (several hosts, :func:`optsched.distributed.initialize`) the same
    call splits the solves over the processes (process ``p`` of ``P`` takes solves
    ``p, p + P, ...``, with ``strategy`` on its own devices) and every process returns every
    solution, in input order; they equal the single-process ones (``tests/test_sharding.py``
    runs two processes).

    Only the learning rate is optimised; for momentum or batch schedules call :func:`solve`.
    ``benchmarks/bench_many.py`` measures both strategies against plain :func:`solve` calls.

    Returns:
        One :class:`Solution` per pair, in order.
    """
    if strategy not in ("auto", "vmap", "loop"):
        raise ValueError(f"strategy must be 'auto', 'vmap' or 'loop', got {strategy!r}")
    triples = _broadcast(models, horizons, controls)
    say = progress or (lambda msg: None)
    if jax.process_count() == 1:
        return _solve_here(triples, optimiser, strategy, throw, say)
    # several processes: each solves its share (on its own devices), then all receive all
    mine = [triples[i] for i in distributed.share(len(triples))]
    here = _solve_here(mine, optimiser, strategy, False, say) if mine else []
    out: list[Any] = [None] * len(triples)
    for p, sols in enumerate(distributed.allgather(here)):
        out[p :: jax.process_count()] = sols
    return [_finish(s, throw) for s in out]


def _solve_here(triples, optimiser: LBFGS, strategy: str, throw: bool, say) -> list[Solution]:
    """:func:`solve_many` of ``(model, horizon, controls)`` triples on this process's devices."""
    t_start = time.perf_counter()
    prepared = []
    for model, T, c in triples:
        c = _as_controls(c)
        if not isinstance(c, LearningRate):
            raise ValueError(
                "solve_many optimises the learning rate alone; call solve for "
                "momentum or batch schedules"
            )
        prepared.append(_prepare(model, T, c))
    if not all(isinstance(m, PowerLawProblem) for m, *_ in prepared):
        if strategy == "vmap":
            raise ValueError("strategy='vmap' batches power-law problems only; use 'loop'")
        out = []
        for i, (model, T, c, _) in enumerate(prepared):
            say(f"solve {i + 1}/{len(prepared)}")
            out.append(solve(model, T, c, optimiser=optimiser, throw=throw))
        return out
    horizons = [T for _, T, _, _ in prepared]
    levels = [_levels(T, optimiser.knots, optimiser.max_knots) for T in horizons]
    pad = max(len(knot_steps(T, k)) for T, lv in zip(horizons, levels, strict=True) for k in lv)
    if strategy == "auto":
        strategy = "loop" if jax.default_backend() == "cpu" else "vmap"
    shared = len(set(horizons)) == 1
    objectives = [m.objective(T, cap, max_blocks=pad) for m, T, _, cap in prepared]
    if strategy == "vmap" and not shared:  # one block shape for every horizon
        objectives = [_with_method(o, "blocks") for o in objectives]
    size = max(o.spec.size for o in objectives)
    max_time = min(o.spec.max_time for o in objectives)
    objectives = [
        eqx.tree_at(lambda o: o.spec, o, _pad_modes(o.spec, size, max_time)) for o in objectives
    ]
    baselines = []
    for i, ((_, T, c, cap), obj) in enumerate(zip(prepared, objectives, strict=True)):
        say(f"tuning baselines {i + 1}/{len(prepared)}")
        baselines.append(tune_baselines(obj, T, cap, lr_min=_floor(c)))
    starts = [min(b.values(), key=lambda r: r.final_loss).schedule for b in baselines]
    controls = [c for _, _, c, _ in prepared]
    histories = [[] for _ in prepared]
    batches = [float(m.batch) for m, *_ in prepared]
    opts: dict[str, Any] = dict(pad=pad, optimiser=optimiser, say=say)
    if strategy == "vmap":
        if len({o.method for o in objectives}) > 1:
            objectives = [_with_method(o, "blocks") for o in objectives]
        scheds = _refine(
            controls,
            starts,
            levels,
            horizons,
            objectives,
            batches,
            per_step=objectives[0].method == "scan",
            histories=histories,
            **opts,
        )
    else:
        scheds = []
        for i in range(len(prepared)):
            say(f"solve {i + 1}/{len(prepared)}")
            scheds += _refine(
                [controls[i]],
                [starts[i]],
                [levels[i]],
                [horizons[i]],
                [objectives[i]],
                [batches[i]],
                per_step=objectives[i].method == "scan",
                histories=[histories[i]],
                **opts,
            )
    out = []
    for i, (model, _, _, cap) in enumerate(prepared):
        best = min(baselines[i].values(), key=lambda r: r.final_loss)
        result = None if math.isfinite(best.final_loss) else RESULTS.nonfinite_loss
        sol = _solution(
            model,
            scheds[i],
            objectives[i],
            baselines[i],
            cap,
            histories[i],
            t_start,
            result,
            batched=len(prepared),
            strategy=strategy,
            method=objectives[i].method,
            lr_max=cap,
        )
        out.append(_finish(sol, throw))
    return out


def _with_method(objective, method: str):
    """A power-law objective forced to one SGD method (both are exact)."""
    return dataclasses.replace(objective, method=method)


def _broadcast(models, horizons, controls) -> list[tuple]:
    """``(model, horizon, controls)`` triples; scalars repeat to the common length."""

    def seq(x, scalar):
        return [x] if isinstance(x, scalar) or x is None else list(x)

    cols = [
        seq(models, AbstractLossModel),
        seq(horizons, (int, np.integer)),
        seq(controls, (int, float, np.floating, np.integer, AbstractControls)),
    ]
    names = ("models", "horizons", "controls")
    for name, c in zip(names, cols, strict=True):
        if not c:
            raise ValueError(f"{name} is empty")
    lengths = {len(c) for c in cols} - {1}
    if len(lengths) > 1:
        counts = ", ".join(f"{name} {len(c)}" for name, c in zip(names, cols, strict=True))
        raise ValueError(
            f"entries per solve do not match ({counts}); give a single value or one per solve"
        )
    n = max(len(c) for c in cols)
    return [tuple(c[i] if len(c) > 1 else c[0] for c in cols) for i in range(n)]


MEMORY_LIMIT = 4 * 2**30
"""Bytes a solve may allocate for per-step arrays; larger horizons are refused at once (before
anything is allocated) instead of running out of memory part-way."""


def _bytes_per_step() -> int:
    """Per-step memory of a solve: every baseline variant's rates (and a copy) in float64."""
    from .baselines import FAMILIES, _variants

    return 2 * 8 * len(_variants(FAMILIES))


def _check_horizon(horizon) -> int:
    if (
        isinstance(horizon, bool)
        or not isinstance(horizon, int | np.integer | float)
        or not math.isfinite(horizon)
        or int(horizon) != horizon
        or int(horizon) < 1
    ):
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    return int(horizon)


def _floor(controls: AbstractControls) -> float:
    """The learning-rate floor of ``controls`` (0 unless a :class:`LearningRate` sets one)."""
    return float(getattr(controls, "lr_min", 0.0))


def _check_lr_max(lr_max):
    if lr_max is not None and not (math.isfinite(float(lr_max)) and float(lr_max) > 0):
        raise ValueError(f"lr_max must be a positive number, got {lr_max}")
    return lr_max


def _pad_modes(spec: Spectrum, size: int, max_time: float) -> Spectrum:
    """``spec`` with inert modes appended up to ``size`` (``lambda = 0``: they never move, add no
    loss and no noise; unit weight keeps the block propagation's ``1/sqrt(w)`` finite)."""
    extra = size - spec.size

    def grow(x, fill):
        return jnp.concatenate([x, jnp.full(extra, fill, dtype=x.dtype)])

    return Spectrum(
        grow(spec.lam, 0.0),
        grow(spec.target, 0.0),
        grow(spec.weight, 1.0),
        spec.offset,
        spec.noise,
        max_time=max_time,
    )


def _levels(horizon: int, knots: int, max_knots: int) -> list[int]:
    levels = [min(knots, horizon)]
    while levels[-1] < min(max_knots, horizon):
        levels.append(min(2 * levels[-1], max_knots, horizon))
    return levels


def _solution(
    model, sched, objective, baselines, lr_cap, history, t_start, result, **stats
) -> Solution:
    """Package a solved schedule, falling back to the best baseline if it is not better."""
    best = min(baselines.values(), key=lambda r: r.final_loss)
    loss_steps, losses = objective.knot_losses(sched)
    final = float(losses[-1])
    fallback = not final < best.final_loss
    if fallback:  # never worse than the best baseline
        sched = best.schedule
        loss_steps, losses = objective.knot_losses(sched)
        final = float(losses[-1])
    if result is None:
        result = RESULTS.successful
        if not math.isfinite(final):
            result = RESULTS.nonfinite_loss
        else:  # the learning-rate refinement decides (joint controls only ever improve on it)
            lr_levels = [h for h in history if h["controls"] == "LearningRate"]
            if lr_levels and lr_levels[-1]["hit_maxiter"]:
                fall = lr_levels[-1]["recent_log_loss_fall"]
                if fall is None or -math.expm1(-fall) > STILL_MOVING:  # relative fall of L_T
                    result = RESULTS.max_steps_reached
    units = dict(units=model.units, lr_scale=model.lr_scale if model.units == "real" else 1.0)
    sched = sched.replace(**units)
    baselines = {
        k: eqx.tree_at(lambda b: b.schedule, v, v.schedule.replace(**units))
        for k, v in baselines.items()
    }
    stats = {
        "iterations": sum(h["iterations"] for h in history),
        "gradient_norm": history[-1]["gradient_norm"] if history else None,
        "time_s": time.perf_counter() - t_start,
        "refinement": history,
        **stats,
        "fallback_to_baseline": bool(fallback),
    }
    return Solution(
        model,
        sched,
        final,
        np.asarray(loss_steps),
        np.asarray(losses),
        float(lr_cap),
        baselines,
        result,
        stats,
    )


def _budget_problem(model, horizon, controls: LearningRateBatch):
    """The problem at the constant batch ``D / T`` (the baselines' batch) and checked bounds."""
    budget = float(controls.budget)
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"batch budget must be a positive number of samples, got {budget}")
    mean = budget / horizon
    lo = float(controls.batch_min)
    hi = 16.0 * mean if controls.batch_max is None else float(controls.batch_max)
    if not 0 < lo < mean < hi:
        raise ValueError(
            f"batch budget {budget:g} over {horizon} steps means a mean batch of {mean:g}, "
            f"outside the batch range ({lo:g}, {hi:g}); at an end of the range every batch is "
            "fixed"
        )
    model = PowerLawProblem.from_dict({**model.to_dict(), "batch": mean})
    return model, dataclasses.replace(controls, batch_min=lo, batch_max=hi)


def _final_loss(objective: AbstractObjective, sched: Schedule) -> float:
    return float(objective.knot_losses(sched)[1][-1])
