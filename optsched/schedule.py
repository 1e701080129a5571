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
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = ["Interpolation", "Schedule", "block_lengths", "expand", "knot_blocks"]

Interpolation = Literal["linear", "previous"]


@functools.partial(jax.jit, static_argnames="interpolation")
def expand(
    steps: Int[Array, " K"],
    values: Float[Array, " K"],
    t: Int[Array, "..."],
    interpolation: Interpolation,
) -> Float[Array, "..."]:
    """Value of the knot schedule ``(steps, values)`` at integer steps ``t`` (jit-able).

    Steps before the first knot take the first value and steps after the last knot hold the
    last value (the convention of optax schedules). Compiled once per shape.
    """
    steps = jnp.asarray(steps)
    values = jnp.asarray(values)
    t = jnp.asarray(t)
    if interpolation == "previous":
        idx = jnp.clip(jnp.searchsorted(steps, t, side="right") - 1, 0, steps.shape[0] - 1)
        return values[idx]
    if interpolation == "linear":
        return jnp.interp(t.astype(values.dtype), steps.astype(values.dtype), values)
    raise ValueError(f"interpolation must be 'linear' or 'previous', got {interpolation!r}")


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
    """Learning rate (and optionally momentum and batch size) on knots over ``horizon`` steps.

    Attributes:
        steps: knot steps, ints, strictly increasing from 0 to ``horizon - 1``, shape ``(K,)``.
        lr: learning rate at each knot, shape ``(K,)``.
        momentum: EMA momentum ``beta`` at each knot, or ``None`` (plain SGD).
        batch: batch size at each knot, or ``None`` (the problem's batch size).
        horizon: number of SGD steps ``T``.
        interpolation: ``"linear"`` or ``"previous"`` (see :func:`expand`).
    """

    steps: Int[Array, " K"]
    lr: Float[Array, " K"]
    momentum: Float[Array, " K"] | None
    batch: Float[Array, " K"] | None
    horizon: int = eqx.field(static=True)
    interpolation: Interpolation = eqx.field(static=True)

    def __init__(
        self,
        steps,
        lr,
        *,
        horizon: int | None = None,
        momentum=None,
        batch=None,
        interpolation: Interpolation = "linear",
    ):
        steps_np = np.asarray(steps)
        if not np.issubdtype(steps_np.dtype, np.integer):
            if np.any(steps_np != np.round(steps_np)):
                raise ValueError("knot steps must be integers")
            steps_np = steps_np.astype(np.int64)
        if horizon is None:
            horizon = int(steps_np[-1]) + 1
        if int(horizon) < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if interpolation not in ("linear", "previous"):
            raise ValueError(
                f"interpolation must be 'linear' or 'previous', got {interpolation!r}"
            )
        _check_steps(steps_np, int(horizon))
        self.steps = jnp.asarray(steps_np, dtype=jnp.int32)
        self.lr = _knot_values("lr", lr, steps_np.shape[0], lower=0.0)
        self.momentum = (
            None if momentum is None
            else _knot_values("momentum", momentum, steps_np.shape[0], lower=0.0, upper=1.0)
        )
        self.batch = None if batch is None else _knot_values(
            "batch", batch, steps_np.shape[0], lower=1.0
        )
        self.horizon = int(horizon)
        self.interpolation = interpolation

    # -------------------------------------------------------------- constructors
    @classmethod
    def constant(cls, lr, horizon: int, *, momentum=None, batch=None) -> Schedule:
        """A constant schedule (two knots, or one when ``horizon == 1``)."""
        steps = [0] if horizon == 1 else [0, horizon - 1]
        n = len(steps)

        def rep(v):
            return None if v is None else [v] * n

        return cls(steps, [lr] * n, horizon=horizon, momentum=rep(momentum), batch=rep(batch),
                   interpolation="previous")

    @classmethod
    def from_function(cls, fn, horizon: int, *, knots: int | None = None) -> Schedule:
        """Sample ``fn(t)`` (``t`` an int array of steps) on ``knots`` knots (default: every step)
        with linear interpolation."""
        if knots is None or knots >= horizon:
            steps = np.arange(horizon)
        else:
            steps = np.unique(np.round(np.linspace(0, horizon - 1, knots)).astype(np.int64))
        return cls(steps, np.asarray(fn(steps), dtype=float), horizon=horizon)

    # -------------------------------------------------------------- evaluation
    def lr_at(self, t) -> Float[Array, "..."]:
        return expand(self.steps, self.lr, t, self.interpolation)

    def momentum_at(self, t) -> Float[Array, "..."]:
        if self.momentum is None:
            return jnp.zeros(jnp.shape(t))
        return expand(self.steps, self.momentum, t, self.interpolation)

    def batch_at(self, t, default) -> Float[Array, "..."]:
        if self.batch is None:
            return jnp.full(jnp.shape(t), default, dtype=float)
        return expand(self.steps, self.batch, t, self.interpolation)

    def per_step(self, default_batch) -> tuple[Array, Array, Array]:
        """``(lr_t, beta_t, m_t)`` for ``t = 0 .. T-1``, each of shape ``(T,)``."""
        t = jnp.arange(self.horizon)
        return self.lr_at(t), self.momentum_at(t), self.batch_at(t, default_batch)

    def intrinsic_time(self) -> float:
        r"""Total intrinsic time :math:`F_T = \sum_{t<T} \eta_t` (concrete)."""
        lr, _, _ = self.per_step(1.0)
        return float(jnp.sum(lr))


def _knot_values(name, values, size, *, lower=None, upper=None):
    arr = jnp.asarray(values, dtype=float)
    if arr.shape != (size,):
        raise ValueError(f"{name} must have one value per knot ({size}), got shape {arr.shape}")
    if not isinstance(arr, jnp.ndarray) or _is_tracer(arr):
        return arr
    vals = np.asarray(arr)
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"{name} must be finite at every knot, got {vals[~np.isfinite(vals)][0]}")
    if lower is not None and np.any(vals < lower):
        raise ValueError(f"{name} must be >= {lower:g}, got {vals[vals < lower][0]:g}")
    if upper is not None and np.any(vals >= upper):
        raise ValueError(f"{name} must be < {upper:g}, got {vals[vals >= upper][0]:g}")
    return arr


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def block_lengths(steps, horizon: int):
    """Length of each block starting at ``steps`` (the last one runs to ``horizon``)."""
    xp = jnp if isinstance(steps, jnp.ndarray) else np
    return xp.append(steps[1:], horizon) - steps


def knot_blocks(schedule: Schedule) -> tuple[Array, Array]:
    """For a ``"previous"`` schedule: the start step and length of each constant block.

    Block ``i`` covers steps ``s_i .. s_{i+1} - 1`` (the last one ``s_{K-1} .. T-1``).
    """
    if schedule.interpolation != "previous":
        raise ValueError(
            "closed-form block propagation needs a piecewise-constant schedule "
            "(interpolation='previous'); use method='scan' or 'ode' for linear interpolation"
        )
    return schedule.steps, block_lengths(schedule.steps, schedule.horizon)
