"""Schedules on knots, and the one rule that expands knots into per-step values.

A schedule over a horizon of ``T`` SGD steps (steps ``t = 0 .. T-1``; the loss after the last
step is ``L_T``) is stored on ``K`` knots ``0 = s_0 < s_1 < ... < s_{K-1} = T-1``. The value at
step ``t`` is

* ``"previous"``: the value of the last knot ``s_i <= t`` (piecewise constant);
* ``"linear"``: linear interpolation between the two knots around ``t``.

:func:`expand` is the only implementation of this rule: the schedule file, the optax export and
every dynamics read knots through it, so that they can never disagree.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jaxtyping import Array, ArrayLike, Float, Int

from ._precision import with_float64

__all__ = [
    "Interpolation",
    "MomentumForm",
    "Units",
    "Schedule",
    "Blocks",
    "block_lengths",
    "check_interpolation",
    "expand",
    "knot_blocks",
]

Interpolation = Literal["linear", "previous"]
MomentumForm = Literal["ema", "heavy_ball"]
Units = Literal["model", "real"]


def check_interpolation(interpolation) -> None:
    """Raise ``ValueError`` unless ``interpolation`` is ``"linear"`` or ``"previous"``."""
    if interpolation not in ("linear", "previous"):
        raise ValueError(f"interpolation must be 'linear' or 'previous', got {interpolation!r}")


def expand(
    steps: Int[ArrayLike, " K"],
    values: Float[ArrayLike, " K"],
    t: Int[ArrayLike, "..."],
    interpolation: Interpolation,
) -> Float[Array, "..."]:
    """Value of the knot schedule ``(steps, values)`` at integer steps ``t`` (jit-able).

    Steps before the first knot take the first value and steps after the last knot hold the
    last value (the convention of optax schedules). Linear interpolation weighs the two knots
    around ``t`` by :math:`w = (t - s_i) / (s_{i+1} - s_i)`, the step differences taken in
    integers (exact at any step the integer type holds) and the value
    :math:`(1 - w) v_i + w v_{i+1}` exact at every knot.

    A compiled kernel, compiled once per shape of ``t`` and bucket of knot counts (the knots
    are padded to a power of two by repeating the last value one step apart past the last
    knot, which changes no value, so a solve's many schedules share a few programs). With
    concrete arguments and ``"previous"`` interpolation (a plain look-up) NumPy does it and
    nothing is compiled. The result is in the caller's precision.
    """
    check_interpolation(interpolation)
    if interpolation == "previous" and not any(_is_tracer(x) for x in (steps, values, t)):
        return jnp.asarray(
            _interpolate(np, np.asarray(steps), np.asarray(values), np.asarray(t), interpolation)
        )
    xp = jnp if _is_tracer(steps) or _is_tracer(values) else np
    knots, knot_values = xp.asarray(steps), xp.asarray(values)
    K = knots.shape[0]
    extra = max(8, 1 << (K - 1).bit_length()) - K
    if extra and K > 1:
        knots = xp.concatenate([knots, knots[-1] + xp.arange(1, extra + 1, dtype=knots.dtype)])
        knot_values = xp.concatenate([knot_values, xp.broadcast_to(knot_values[-1], (extra,))])
    return _expand_traced(knots, knot_values, t, interpolation)


def _interpolate(xp, steps, values, t, interpolation):
    """The arithmetic of :func:`expand` in ``xp`` (``numpy`` or ``jax.numpy``)."""
    K = steps.shape[0]
    idx = xp.clip(xp.searchsorted(steps, t, side="right") - 1, 0, K - 1)
    if interpolation == "previous" or K == 1:
        return values[idx]
    left = xp.minimum(idx, K - 2)
    s0, s1 = steps[left], steps[left + 1]
    w = xp.clip((t - s0).astype(values.dtype) / (s1 - s0).astype(values.dtype), 0.0, 1.0)
    return (1.0 - w) * values[left] + w * values[left + 1]


@functools.partial(jax.jit, static_argnames="interpolation")
def _expand_traced(steps, values, t, interpolation):
    return _interpolate(jnp, jnp.asarray(steps), jnp.asarray(values), jnp.asarray(t), interpolation)


def _check_steps(steps: np.ndarray, horizon: int) -> None:
    if steps.ndim != 1 or steps.shape[0] < 1:
        raise ValueError("steps must be a non-empty 1-d sequence of ints")
    if steps[0] != 0:
        raise ValueError(f"the first knot must be step 0, got {int(steps[0])}")
    if steps[-1] != horizon - 1:
        raise ValueError(f"the last knot must be step T-1 = {horizon - 1}, got {int(steps[-1])}")
    if np.any(np.diff(steps) <= 0):
        bad = int(np.argmax(np.diff(steps) <= 0))
        raise ValueError(
            f"steps must be strictly increasing; step {int(steps[bad + 1])} follows "
            f"{int(steps[bad])}"
        )


class Schedule(eqx.Module):
    r"""Learning rate (and optionally momentum and batch size) on knots over ``horizon`` steps.

    A schedule is itself an optax schedule: ``schedule(count)`` is the learning rate at step
    ``count`` (an int32 or int64 scalar or array, under ``jit`` too), computed in the caller's
    precision, holding the last value after the horizon.

    **Units.** ``units="model"`` means the learning rate the loss model's equations see;
    ``units="real"`` means the units of a real training run, with ``lr_scale`` model learning-rate
    units per real one (:math:`\eta^{model} = s_\eta\,\eta^{real}`, fitted from pilot runs).
    :meth:`to_units` converts; steps are the same in both. ``units=None`` (the default for a
    schedule you write yourself) means "in the units of whatever model reads it": every model
    reads it as it is. Schedules that optsched returns always say their units.

    **Momentum.** ``momentum_form="ema"`` reads the momentum knots as :math:`\beta` of
    :math:`v \leftarrow \beta v + (1-\beta) g`; ``"heavy_ball"`` as :math:`\mu` of optax's trace
    :math:`\tau \leftarrow g + \mu\tau` (see :mod:`optsched.dynamics.momentum`).

    Attributes:
        steps: knot steps, int64, strictly increasing from 0 to ``horizon - 1``, shape ``(K,)``.
        lr: learning rate at each knot, shape ``(K,)``.
        momentum: momentum at each knot (in ``momentum_form``), or ``None`` (plain SGD).
        batch: batch size at each knot, or ``None`` (the problem's batch size).
        horizon: number of SGD steps ``T``.
        interpolation: ``"linear"`` or ``"previous"`` (see :func:`expand`).
        momentum_form: ``"ema"`` or ``"heavy_ball"``.
        units: ``"model"``, ``"real"`` or ``None`` (unspecified).
        lr_scale: model learning rate per unit of ``lr`` (1 unless ``units="real"``).

    Knot values are stored as float64 numpy arrays (traced values stay traced), so a schedule
    reads the same whatever JAX's global precision is.
    """

    steps: Int[np.ndarray, " K"]
    lr: Float[Array | np.ndarray, " K"]
    momentum: Float[Array | np.ndarray, " K"] | None
    batch: Float[Array | np.ndarray, " K"] | None
    horizon: int = eqx.field(static=True)
    interpolation: Interpolation = eqx.field(static=True)
    momentum_form: MomentumForm = eqx.field(static=True)
    units: Units | None = eqx.field(static=True)
    lr_scale: float = eqx.field(static=True)

    def __init__(
        self,
        steps,
        lr,
        *,
        horizon: int | None = None,
        momentum=None,
        batch=None,
        interpolation: Interpolation = "linear",
        momentum_form: MomentumForm = "ema",
        units: Units | None = None,
        lr_scale: float = 1.0,
    ):
        steps_np = np.asarray(steps)
        if steps_np.dtype == bool or not (
            np.issubdtype(steps_np.dtype, np.integer) or np.issubdtype(steps_np.dtype, np.floating)
        ):
            raise ValueError("knot steps must be integers")
        if not np.issubdtype(steps_np.dtype, np.integer):
            if not np.all(np.isfinite(steps_np)) or np.any(steps_np != np.round(steps_np)):
                raise ValueError("knot steps must be integers")
            if np.any(np.abs(steps_np) >= 2.0**62):
                raise ValueError("knot steps must be below 2**62")
        steps_np = steps_np.astype(np.int64)
        if steps_np.ndim != 1 or steps_np.size == 0:
            raise ValueError("steps must be a non-empty 1-d sequence of ints")
        if horizon is None:
            horizon = int(steps_np[-1]) + 1 if steps_np.size else 0
        if isinstance(horizon, bool) or int(horizon) != horizon or int(horizon) < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
        check_interpolation(interpolation)
        if momentum_form not in ("ema", "heavy_ball"):
            raise ValueError(f"momentum_form must be 'ema' or 'heavy_ball', got {momentum_form!r}")
        if units not in ("model", "real", None):
            raise ValueError(f"units must be 'model', 'real' or None, got {units!r}")
        if not (math.isfinite(float(lr_scale)) and float(lr_scale) > 0):
            raise ValueError(f"lr_scale must be a positive number, got {lr_scale!r}")
        if units != "real" and float(lr_scale) != 1.0:
            raise ValueError("only a schedule in real units has an lr_scale other than 1")
        _check_steps(steps_np, int(horizon))
        n = steps_np.shape[0]
        self.steps = steps_np
        self.lr = _knot_values("lr", lr, n, lower=0.0)
        self.momentum = (
            None
            if momentum is None
            else _knot_values("momentum", momentum, n, lower=0.0, upper=1.0)
        )
        self.batch = None if batch is None else _knot_values("batch", batch, n, lower=1.0)
        self.horizon = int(horizon)
        self.interpolation = interpolation
        self.momentum_form = momentum_form
        self.units = units
        self.lr_scale = float(lr_scale)

    # -------------------------------------------------------------- constructors
    @classmethod
    def constant(cls, lr, horizon: int, *, momentum=None, batch=None, **kwargs) -> Schedule:
        """A constant schedule (two knots, or one when ``horizon == 1``); ``kwargs`` as for the
        constructor (``momentum_form``, ``units``, ``lr_scale``)."""
        steps = [0] if horizon == 1 else [0, horizon - 1]
        n = len(steps)

        def rep(v):
            return None if v is None else [v] * n

        return cls(
            steps,
            [lr] * n,
            horizon=horizon,
            momentum=rep(momentum),
            batch=rep(batch),
            interpolation="previous",
            **kwargs,
        )

    @classmethod
    def from_function(cls, fn, horizon: int, *, knots: int | None = None, **kwargs) -> Schedule:
        """Sample ``fn(t)`` (``t`` an int array of steps) on ``knots`` knots (default: every step)
        with linear interpolation."""
        if knots is None or knots >= horizon:
            steps = np.arange(horizon)
        else:
            steps = np.unique(np.round(np.linspace(0, horizon - 1, knots)).astype(np.int64))
        return cls(steps, np.asarray(fn(steps), dtype=np.float64), horizon=horizon, **kwargs)

    def replace(self, **changes) -> Schedule:
        """A copy with some fields changed (checked like a new schedule)."""
        fields = dict(
            steps=self.steps,
            lr=self.lr,
            horizon=self.horizon,
            momentum=self.momentum,
            batch=self.batch,
            interpolation=self.interpolation,
            momentum_form=self.momentum_form,
            units=self.units,
            lr_scale=self.lr_scale,
        )
        fields.update(changes)
        return Schedule(**fields)  # type: ignore[arg-type]

    # -------------------------------------------------------------- units
    def to_units(self, units: Units, *, lr_scale: float | None = None) -> Schedule:
        r"""This schedule in ``units``: ``"model"``, or ``"real"`` with ``lr_scale`` model
        learning-rate units per real one (default: this schedule's own scale).

        :math:`\eta^{model} = s\,\eta^{real}`; steps, momentum and batch sizes are unchanged.
        """
        if self.units is None:
            raise ValueError(
                "this schedule does not say its units (units=None); build it with "
                "units='model' or units='real' and its lr_scale first"
            )
        model_lr = np.asarray(self.lr, dtype=np.float64) * self.lr_scale
        if units == "model":
            return self.replace(lr=model_lr, units="model", lr_scale=1.0)
        if units != "real":
            raise ValueError(f"units must be 'model' or 'real', got {units!r}")
        scale = self.lr_scale if lr_scale is None else float(lr_scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"lr_scale must be a positive number, got {lr_scale!r}")
        return self.replace(lr=model_lr / scale, units="real", lr_scale=scale)

    # -------------------------------------------------------------- evaluation
    def __call__(self, count) -> Array:
        """The learning rate at step ``count``: an optax schedule (caller's precision)."""
        return expand(self.steps, self.lr, count, self.interpolation)

    @with_float64
    def lr_at(self, t) -> Float[Array, "..."]:
        """Learning rate at steps ``t`` (float64)."""
        return expand(self.steps, self.lr, t, self.interpolation)

    @with_float64
    def momentum_at(self, t) -> Float[Array, "..."]:
        """Momentum at steps ``t`` (0 without momentum; float64)."""
        if self.momentum is None:
            return jnp.zeros(jnp.shape(t))
        return expand(self.steps, self.momentum, t, self.interpolation)

    @with_float64
    def batch_at(self, t, default) -> Float[Array, "..."]:
        """Batch size at steps ``t`` (``default`` without a batch schedule; float64)."""
        if self.batch is None:
            return jnp.full(jnp.shape(t), default, dtype=float)
        return expand(self.steps, self.batch, t, self.interpolation)

    @with_float64
    def per_step(self, default_batch) -> tuple[Array, Array, Array]:
        """``(lr_t, beta_t, m_t)`` for ``t = 0 .. T-1``, each of shape ``(T,)`` (float64).

        Concrete knots are expanded by NumPy, so nothing compiles (what a prediction or a
        recomputation of a schedule's loss pays for); the values equal :meth:`lr_at`'s to the
        last bit or, with linear interpolation, within an ulp (the compiled kernel fuses the
        multiply-add)."""
        fields = (self.steps, self.lr, self.momentum, self.batch, default_batch)
        if any(_is_tracer(x) for x in fields):
            t = jnp.arange(self.horizon)
            return self.lr_at(t), self.momentum_at(t), self.batch_at(t, default_batch)
        t, steps = np.arange(self.horizon), np.asarray(self.steps)

        def at(values, default):
            if values is None:  # a NumPy array moved over: no program to compile
                return jnp.asarray(np.full(self.horizon, default, dtype=np.float64))
            values = np.asarray(values, dtype=np.float64)
            return jnp.asarray(_interpolate(np, steps, values, t, self.interpolation))

        return at(self.lr, 0.0), at(self.momentum, 0.0), at(self.batch, default_batch)

    @with_float64
    def intrinsic_time(self) -> float:
        r"""Total intrinsic time :math:`F_T = \sum_{t<T} \eta_t` (concrete, this schedule's
        units)."""
        lr, _, _ = self.per_step(1.0)
        return float(jnp.sum(lr))


def _knot_values(name, values, size, *, lower=None, upper=None):
    if _is_tracer(values):
        arr = values
    else:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numbers, one per knot") from None
    if arr.shape != (size,):
        raise ValueError(f"{name} must have one value per knot ({size}), got shape {arr.shape}")
    if _is_tracer(arr):
        return arr
    vals = arr
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"{name} must be finite at every knot, got {vals[~np.isfinite(vals)][0]}")
    if lower is not None and np.any(vals < lower):
        raise ValueError(f"{name} must be >= {lower:g}, got {vals[vals < lower][0]:g}")
    if upper is not None and np.any(vals >= upper):
        raise ValueError(f"{name} must be < {upper:g}, got {vals[vals >= upper][0]:g}")
    return arr


def _is_tracer(x) -> bool:
    return isinstance(x, Tracer)


def block_lengths(steps, horizon: int):
    """Length of each block starting at ``steps`` (the last one runs to ``horizon``)."""
    xp = jnp if isinstance(steps, jnp.ndarray) else np
    return xp.append(steps[1:], horizon) - steps


def knot_blocks(schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
    """For a ``"previous"`` schedule: the start step and length of each constant block.

    Block ``i`` covers steps ``s_i .. s_{i+1} - 1`` (the last one ``s_{K-1} .. T-1``).
    """
    if schedule.interpolation != "previous":
        raise ValueError(
            "closed-form block propagation needs a piecewise-constant schedule "
            "(interpolation='previous'); use method='scan' or 'ode' for linear interpolation"
        )
    return schedule.steps, np.asarray(block_lengths(schedule.steps, schedule.horizon))


class Blocks(eqx.Module):
    """The knots of one refinement level, padded to a fixed count, and how steps read them.

    With ``"previous"`` interpolation the controls are constant on each block; with
    ``"linear"`` they are continuous, step ``t`` between knots ``s_i <= t < s_{i+1}`` taking
    :math:`(1 - w_t) v_i + w_t v_{i+1}`, :math:`w_t = (t - s_i)/(s_{i+1} - s_i)` (exactly what
    :func:`expand` gives, so what is optimised is what is exported).

    Attributes:
        lengths: steps in each block (0 for padding), shape ``(P,)``.
        block_of_step: the block each step ``0 .. T-1`` belongs to, shape ``(T,)``, for the
            per-step dynamics; ``None`` when only the closed-form block propagation is used
            (then blocks of different horizons share one shape and can be stacked).
        weight_of_step: :math:`w_t` for linear interpolation, shape ``(T,)``; ``None`` for
            piecewise-constant controls.
    """

    lengths: Float[Array, " P"]
    block_of_step: Int[Array, " T"] | None = None
    weight_of_step: Float[Array, " T"] | None = None

    @classmethod
    def build(
        cls,
        steps: np.ndarray,
        horizon: int,
        pad: int,
        *,
        per_step: bool = True,
        interpolation: Interpolation = "previous",
    ) -> Blocks:
        lengths = np.zeros(pad)
        lengths[: len(steps)] = block_lengths(steps, horizon)
        if interpolation == "linear" and not per_step:
            raise ValueError("linear controls are evaluated step by step (per_step=True)")
        if not per_step:
            return cls(jnp.asarray(lengths))
        block = np.searchsorted(steps, np.arange(horizon), side="right") - 1
        if interpolation == "previous":
            return cls(jnp.asarray(lengths), jnp.asarray(block, dtype=jnp.int32))
        nxt = np.append(steps[1:], steps[-1] + 1)[block]
        weight = np.where(block < len(steps) - 1, (np.arange(horizon) - steps[block]), 0)
        weight = weight / (nxt - steps[block])
        return cls(jnp.asarray(lengths), jnp.asarray(block, dtype=jnp.int32), jnp.asarray(weight))

    def per_step(self, values: Float[Array, " P"]) -> Float[Array, " T"]:
        """The control at every step from its knot values ``(P,)`` (padded)."""
        if self.block_of_step is None:
            raise ValueError("a per-step loss model needs per-step blocks")
        here = values[self.block_of_step]
        if self.weight_of_step is None:
            return here
        w = self.weight_of_step
        return (1.0 - w) * here + w * values[
            jnp.minimum(self.block_of_step + 1, values.shape[0] - 1)
        ]
