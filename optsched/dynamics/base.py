"""The interface every loss dynamics shares, and the per-step scan they use.

A dynamics maps a :class:`~optsched.model.spectrum.Spectrum` and a
:class:`~optsched.schedule.Schedule`
to a :class:`Trajectory`: the excess loss ``L_t`` (after ``t`` updates) at a set of steps, and a
divergence flag. Dynamics are pure and jit-able; raising on divergence happens at the edge
(:func:`optsched.loss_curve`).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._precision import float64
from ..model.spectrum import Spectrum
from ..schedule import Schedule

__all__ = [
    "AbstractDynamics",
    "Trajectory",
    "UnsupportedScheduleError",
    "BLOWUP",
    "blown_up",
    "divergence_flag",
    "scan_steps",
]

BLOWUP = 1e6
"""A loss above ``BLOWUP * (L_0 + noise)`` (or a non-finite one) counts as divergence."""


class Trajectory(eqx.Module):
    """Excess loss at selected steps of a training run.

    Attributes:
        steps: the number of updates done at each reported point, shape ``(P,)``; the first is 0
            and the last is the horizon ``T``.
        loss: excess loss ``L_t`` at those steps, shape ``(P,)``.
        diverged: whether the run blew up (a non-finite loss or one above the ``BLOWUP`` bound).
    """

    steps: Int[Array, " P"]
    loss: Float[Array, " P"]
    diverged: Bool[Array, ""]

    @property
    def final_loss(self) -> Float[Array, ""]:
        """Excess loss after the last step, ``L_T``."""
        return self.loss[-1]


def blown_up(loss, initial_loss, noise, *, xp=jnp) -> Bool[Array, "..."]:
    """Elementwise: is ``loss`` non-finite or above ``BLOWUP * (|L_0| + noise)``? (``xp=np``
    for concrete NumPy inputs.)"""
    return ~xp.isfinite(loss) | (loss > BLOWUP * (xp.abs(initial_loss) + noise))


def divergence_flag(loss: Float[Array, " P"], noise) -> Bool[Array, ""]:
    """Whether a loss curve (starting at ``L_0``) diverged."""
    return jnp.any(blown_up(loss, loss[0], noise))


class AbstractDynamics(eqx.Module):
    """How the expected loss evolves under a schedule (a strategy object, like a diffrax solver).

    Each dynamics declares what it supports in three class attributes; :meth:`loss_curve`
    refuses a schedule that needs anything else with a :class:`UnsupportedScheduleError` that
    names an alternative, instead of silently dropping (say) the momentum.
    """

    supports_momentum: ClassVar[bool] = False
    """Whether momentum knots are evolved (else a schedule with momentum is refused)."""
    supports_linear: ClassVar[bool] = True
    """Whether ``"linear"`` interpolation is supported (else only ``"previous"``)."""
    supports_batch_schedule: ClassVar[bool] = True
    """Whether per-knot batch sizes are supported."""

    def check(self, schedule: Schedule) -> None:
        """Raise :class:`UnsupportedScheduleError` if this dynamics cannot run ``schedule``."""
        name = type(self).__name__
        if schedule.momentum is not None and not self.supports_momentum:
            raise UnsupportedScheduleError(
                f"{name} evolves plain SGD only and this schedule has momentum; use "
                "MomentumRecursion (method='scan')"
            )
        if schedule.interpolation == "linear" and not self.supports_linear:
            raise UnsupportedScheduleError(
                f"{name} needs a piecewise-constant schedule (interpolation='previous'); use "
                "StepRecursion (method='scan') or ContinuousTime (method='ode')"
            )
        if schedule.batch is not None and not self.supports_batch_schedule:
            raise UnsupportedScheduleError(f"{name} does not support batch-size schedules")

    def loss_curve(self, spectrum: Spectrum, schedule: Schedule, batch) -> Trajectory:
        """The expected excess loss of SGD on ``spectrum`` following ``schedule`` (model units).

        ``batch`` is the batch size used where the schedule has none.
        """
        self.check(schedule)
        if schedule.units == "real":
            schedule = schedule.to_units("model")
        with float64():
            return self._loss_curve(spectrum, schedule, batch)

    @abc.abstractmethod
    def _loss_curve(self, spectrum: Spectrum, schedule: Schedule, batch) -> Trajectory:
        """The dynamics itself, for a schedule that passed :meth:`check` (model units)."""


class UnsupportedScheduleError(ValueError):
    """A dynamics was asked to run a schedule it does not support (momentum, interpolation)."""


def scan_steps(step, init, xs, *, checkpoint_every: int | None = None):
    """``lax.scan(step, init, xs)`` returning the per-step outputs, optionally checkpointed.

    With ``checkpoint_every = c`` the steps run in chunks of ``c`` whose insides are recomputed
    in the backward pass: memory ``O(T/c + c)`` states instead of ``O(T)``. Padding steps added to
    fill the last chunk are skipped exactly (the state passes through unchanged).
    """
    if checkpoint_every is None:
        return jax.lax.scan(step, init, xs)
    leaves = jax.tree_util.tree_leaves(xs)
    n = leaves[0].shape[0]
    c = int(checkpoint_every)
    chunks = -(-n // c)
    pad = chunks * c - n
    valid = jnp.arange(chunks * c) < n

    def pad_and_chunk(x):
        x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)], axis=0)
        return x.reshape((chunks, c) + x.shape[1:])

    xs_c = jax.tree_util.tree_map(pad_and_chunk, xs)
    valid_c = valid.reshape(chunks, c)

    def masked(carry, inp):
        x, ok = inp
        new, out = step(carry, x)
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, carry)
        return new, out

    @jax.checkpoint
    def chunk(carry, inp):
        return jax.lax.scan(masked, carry, inp)

    final, outs = jax.lax.scan(chunk, init, (xs_c, valid_c))
    outs = jax.tree_util.tree_map(lambda y: y.reshape((chunks * c,) + y.shape[2:])[:n], outs)
    return final, outs
