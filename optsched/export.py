r"""Hand a solved schedule to a training loop: optax schedules, momentum, batch sizes, files.

Everything here reads the knots through :func:`optsched.schedule.expand`, the one rule the
schedule file and the dynamics use, so the exported values are the values the loss was predicted
for.

* :func:`to_optax`: the learning rate :math:`\eta_t` as an ``optax.Schedule`` (optionally rescaled
  to a tuned peak, or stretched to another horizon in ``t / T``).
* :func:`to_optax_momentum`: the pair ``(lr_t, mu_t)`` that makes optax's heavy-ball trace
  reproduce EMA momentum exactly, for time-varying :math:`\beta_t` (below).
* :func:`batch_size_schedule` and :func:`batches`: integer batch sizes that keep the sample
  budget after rounding, and the sample stream cut into batches of those sizes.
* :func:`to_csv` and :func:`to_optax_source`: the schedule for frameworks outside Python-JAX.

**Warm-up.** A solved schedule starts at its first knot's value: the models optimise the rates
they are given, and the power-law model has no instability to warm up against. A real network
usually needs a warm-up. ``warmup=W`` (``to_optax``, ``to_csv``, ``to_optax_source``;
``optsched export --warmup W``) multiplies the learning rate by the linear ramp
:math:`\min(1, (t + 1) / W)`, as the pilot runs of a fit usually did; the exported rates then
differ from the solved ones over the first ``W`` steps, which the predicted loss did not include.

EMA momentum and optax's trace
------------------------------
The model's momentum is the EMA :math:`v_{t+1} = \beta_t v_t + (1-\beta_t) g_t`,
:math:`w_{t+1} = w_t - \eta_t v_{t+1}`. ``optax.sgd(momentum=mu)`` keeps the trace
:math:`\tau_{t+1} = g_t + \mu_t \tau_t` and steps :math:`w_{t+1} = w_t - \mathrm{lr}_t \tau_{t+1}`.
With :math:`v_t = (1 - \beta_{t-1}) \tau_t` the two are the same iteration when

.. math::
    \mu_t = \beta_t \frac{1 - \beta_{t-1}}{1 - \beta_t}, \qquad \mathrm{lr}_t = \eta_t (1 - \beta_t)

(:math:`\mu_0` multiplies :math:`\tau_0 = 0` and is set to :math:`\beta_0`). For constant
:math:`\beta` this is the familiar :math:`\mu = \beta`, :math:`\mathrm{lr} = \eta (1 - \beta)`.
"""

from __future__ import annotations

import csv
import io as _io
import math
from collections.abc import Iterable, Iterator

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optax

from ._precision import with_float64
from .schedule import Schedule, expand

__all__ = [
    "BatchSizes",
    "batch_size_schedule",
    "batches",
    "schedule_of",
    "to_csv",
    "to_optax",
    "to_optax_momentum",
    "to_optax_source",
    "warmup_factors",
    "warmup_ramp",
]


def schedule_of(obj) -> Schedule:
    """The :class:`Schedule` held by a ``Solution``, a loaded schedule file, or a schedule."""
    if isinstance(obj, Schedule):
        return obj
    sched = getattr(obj, "schedule", None)
    if isinstance(sched, Schedule):
        return sched
    raise TypeError(
        f"expected a Solution, a loaded schedule file or a Schedule, got {type(obj).__name__}"
    )


def _position(step, horizon: int, total_steps: int | None):
    """The step of the original schedule that training step ``step`` reads (stretch in t/T)."""
    step = jnp.asarray(step)
    if total_steps is None or total_steps == horizon:
        return step
    return step * ((horizon - 1) / max(total_steps - 1, 1))


def _check_total_steps(total_steps):
    if total_steps is not None and (int(total_steps) != total_steps or total_steps < 1):
        raise ValueError(f"total_steps must be a positive integer, got {total_steps}")


def _check_warmup(warmup) -> int:
    if isinstance(warmup, bool) or int(warmup) != warmup or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer (steps), got {warmup}")
    return int(warmup)


def warmup_factors(horizon: int, warmup: int) -> np.ndarray:
    r"""The warm-up factor :math:`\min(1, (t + 1) / W)` at every step ``t = 0 .. T-1`` in NumPy
    float64 (1 everywhere for ``W = 0``): what :func:`to_csv` writes, exact to the bit."""
    if warmup == 0:
        return np.ones(horizon)
    return np.minimum(1.0, (np.arange(horizon) + 1) / warmup)


def warmup_ramp(step, warmup: int):
    r"""The warm-up factor :math:`\min(1, (t + 1) / W)` at ``step`` (1 everywhere for ``W = 0``),
    in the caller's precision."""
    step = jnp.asarray(step)
    if warmup == 0:
        return jnp.ones(step.shape)
    return jnp.minimum(1.0, (step + 1) / warmup)


def to_optax(
    solution,
    *,
    peak_lr: float | None = None,
    total_steps: int | None = None,
    warmup: int = 0,
) -> optax.Schedule:
    r"""The learning-rate schedule as an ``optax.Schedule``: ``step -> eta_step``.

    With neither option, ``to_optax(s)(t)`` equals the schedule file's expansion at every step
    ``t`` (scalar or array, jit-able), and holds the last value for ``t >= T``.

    Args:
        solution: a ``Solution``, a loaded schedule file, or a ``Schedule``.
        peak_lr: rescale the values so that their maximum is ``peak_lr`` (your tuned peak); the
            shape is kept.
        total_steps: stretch the shape to another horizon ``T'`` in ``t / T``: step ``s`` reads the
            original schedule at :math:`s (T-1)/(T'-1)`. Whether the *peak* should also move
            depends on the phase: in the easy phase theory says it scales as :math:`T^{-\xi}`, in
            the hard phase the optimum sits at the cap and only the anneal shrinks (as a fraction of
            ``T``). :func:`optsched.transfer` applies that rule, or re-solves.
        warmup: multiply by the linear warm-up :math:`\min(1, (t + 1) / W)` over the first
            ``warmup`` training steps (module docstring; 0: none).
    """
    sched = schedule_of(solution)
    _check_total_steps(total_steps)
    warmup = _check_warmup(warmup)
    values = np.asarray(sched.lr, dtype=np.float64)  # read in the caller's precision
    if peak_lr is not None:
        if not (math.isfinite(peak_lr) and peak_lr > 0):
            raise ValueError(f"peak_lr must be a positive number, got {peak_lr}")
        top = float(np.max(values))
        if top <= 0:
            raise ValueError("the schedule is zero everywhere; it has no peak to rescale")
        values = values * (peak_lr / top)
    steps, horizon, interp = sched.steps, sched.horizon, sched.interpolation

    def schedule(count):
        value = expand(steps, values, _position(count, horizon, total_steps), interp)
        return value if warmup == 0 else value * warmup_ramp(count, warmup)

    return schedule


def to_optax_momentum(solution) -> tuple[optax.Schedule, optax.Schedule]:
    r"""``(learning_rate, momentum)`` schedules for ``optax.inject_hyperparams(optax.sgd)``.

    Exact for time-varying EMA momentum :math:`\beta_t` (see the module docstring):
    :math:`\mathrm{lr}_t = \eta_t (1 - \beta_t)` and
    :math:`\mu_t = \beta_t (1 - \beta_{t-1}) / (1 - \beta_t)`. Use them as::

        lr, mu = optsched.export.to_optax_momentum(solution)
        opt = optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=mu)

    A schedule without momentum gives ``mu = 0`` and the plain learning rate. A schedule whose
    ``momentum_form`` is ``"heavy_ball"`` already is optax's form: ``(eta_t, mu_t)`` are returned
    as they are. Both compute in the caller's precision.
    """
    sched = schedule_of(solution)
    steps, interp = sched.steps, sched.interpolation
    beta_knots = (
        np.zeros(len(steps))
        if sched.momentum is None
        else np.asarray(sched.momentum, dtype=np.float64)
    )

    def beta_at(t):
        return expand(steps, beta_knots, jnp.clip(jnp.asarray(t), 0, None), interp)

    if sched.momentum_form == "heavy_ball":  # already optax's trace
        return sched, beta_at

    def learning_rate(count):
        return sched(count) * (1.0 - beta_at(count))

    def momentum(count):
        count = jnp.asarray(count)
        beta, beta_prev = beta_at(count), beta_at(count - 1)
        return beta * (1.0 - beta_prev) / (1.0 - beta)

    return learning_rate, momentum


class BatchSizes(eqx.Module):
    """Integer batch sizes for every step, keeping the sample budget after rounding.

    Attributes:
        sizes: batch size at each step ``0 .. T-1`` (ints, each within 1 of the real-valued
            schedule), shape ``(T,)``.
        budget: the real-valued sample budget :math:`D = \\sum_t m_t`.
        total: ``sum(sizes)``, equal to ``round(budget)``.
        max_rounding: the largest ``|sizes_t - m_t|`` (below 1).
    """

    sizes: np.ndarray
    budget: float
    total: int
    max_rounding: float

    def __call__(self, step):
        """Batch size at ``step`` (the last one after the horizon)."""
        return int(self.sizes[min(int(step), len(self.sizes) - 1)])


@with_float64
def batch_size_schedule(solution, default_batch: float | None = None) -> BatchSizes:
    r"""Round the batch-size schedule to integers so that the total number of samples is kept.

    Rounds the running total: :math:`M_t = \mathrm{round}(\sum_{s<t} m_s)` and
    ``sizes_t = M_{t+1} - M_t``, so ``sum(sizes) = round(D)`` exactly and every size is within 1 of
    :math:`m_t`. A schedule without a batch schedule uses the problem's batch size
    (``default_batch``, taken from the solution when there is one).
    """
    sched = schedule_of(solution)
    _, _, m = sched.per_step(_problem_batch(solution) if default_batch is None else default_batch)
    m = np.asarray(m, dtype=float)
    running = np.round(np.concatenate([[0.0], np.cumsum(m)])).astype(np.int64)
    sizes = np.diff(running)
    if np.any(sizes < 1):
        raise ValueError("the batch-size schedule rounds to an empty batch; sizes must be >= 1")
    return BatchSizes(sizes, float(np.sum(m)), int(running[-1]), float(np.max(np.abs(sizes - m))))


def batches(samples: Iterable, sizes: BatchSizes | Iterable[int]) -> Iterator[list]:
    """Cut a stream of samples into consecutive batches of the given sizes.

    Yields lists; stops when either the sizes or the stream run out (a short last batch is
    never yielded: the budget was counted in whole batches).
    """
    it = iter(samples)
    for size in sizes.sizes if isinstance(sizes, BatchSizes) else sizes:
        batch = [x for _, x in zip(range(int(size)), it, strict=False)]
        if len(batch) < size:
            return
        yield batch


def _problem_batch(solution) -> float:
    """The batch size of the solution's problem (1 for a bare schedule, or a loss model of
    real runs, which has none)."""
    return float(getattr(getattr(solution, "problem", None), "batch", 1.0))


@with_float64
def to_csv(solution, *, warmup: int = 0) -> str:
    """The schedule at every step as CSV text with the header ``step,lr,momentum,batch``.

    ``momentum`` is the EMA :math:`\\beta_t` (0 without momentum) and ``batch`` the real-valued
    :math:`m_t` (the problem's batch size without a batch schedule). Values are written with 17
    significant digits, so reading them back is exact. ``warmup`` multiplies the learning rate by
    the linear warm-up over that many steps (module docstring).
    """
    warmup = _check_warmup(warmup)
    lr, beta, m = (np.asarray(x) for x in schedule_of(solution).per_step(_problem_batch(solution)))
    if warmup:
        lr = lr * warmup_factors(lr.shape[0], warmup)
    out = _io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "lr", "momentum", "batch"])
    for t, (lr_t, beta_t, m_t) in enumerate(zip(lr, beta, m, strict=True)):
        writer.writerow([t, repr(float(lr_t)), repr(float(beta_t)), repr(float(m_t))])
    return out.getvalue()


_SOURCE = '''"""Learning-rate schedule exported by optsched {version} (format optsched.schedule/2).

Horizon T = {horizon} steps, {interpolation!r} interpolation between {knots} knots; the value
is held after the last knot{warmup_note}. Use it as an optax schedule:

    optimizer = optax.sgd(learning_rate=lr_schedule)
"""
import jax.numpy as jnp

HORIZON = {horizon}
STEPS = jnp.asarray({steps})
LR = jnp.asarray({lr})


def lr_schedule(count):
    """Learning rate at step ``count`` (int scalar or array; jit-able)."""
    count = jnp.asarray(count)
{body}
'''

_WARMUP = """

WARMUP = {warmup}
_solved = lr_schedule


def lr_schedule(count):
    \"\"\"The solved schedule times the linear warm-up min(1, (count + 1) / WARMUP).\"\"\"
    count = jnp.asarray(count)
    return _solved(count) * jnp.minimum(1.0, (count + 1) / WARMUP)
"""

_BODIES = {
    "linear": "    return jnp.interp(count.astype(LR.dtype), STEPS.astype(LR.dtype), LR)",
    "previous": (
        '    idx = jnp.searchsorted(STEPS, count, side="right") - 1\n'
        "    return LR[jnp.clip(idx, 0, STEPS.shape[0] - 1)]"
    ),
}


@with_float64
def to_optax_source(solution, *, warmup: int = 0) -> str:
    """A self-contained Python module defining ``lr_schedule(count)`` (needs only ``jax``).

    It applies the same expansion rule as :func:`to_optax`, written out, with the knot values
    printed exactly (``repr`` of each float); ``warmup`` as in :func:`to_optax`.
    """
    from . import __version__

    warmup = _check_warmup(warmup)
    sched = schedule_of(solution)
    if sched.momentum is not None:
        raise ValueError(
            "the optax-py export writes the learning rate only, and this schedule has "
            "momentum; export it as csv, or use to_optax_momentum in Python"
        )
    steps = "[" + ", ".join(str(int(s)) for s in np.asarray(sched.steps)) + "]"
    lr = "[" + ", ".join(repr(float(v)) for v in np.asarray(sched.lr)) + "]"
    source = _SOURCE.format(
        version=__version__,
        horizon=sched.horizon,
        interpolation=sched.interpolation,
        knots=len(sched.steps),
        warmup_note=f", times a linear warm-up over {warmup} steps" if warmup else "",
        steps=steps,
        lr=lr,
        body=_BODIES[sched.interpolation],
    )
    return source + (_WARMUP.format(warmup=warmup) if warmup else "")
