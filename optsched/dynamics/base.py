"""The interface every loss dynamics shares, and the per-step scan they use.

A dynamics maps a :class:`~optsched.model.spectrum.Spectrum` and a :class:`~optsched.schedule.Schedule`
to a :class:`Trajectory`: the excess loss ``L_t`` (after ``t`` updates) at a set of steps, and a
divergence flag. Dynamics are pure and jit-able; raising on divergence happens at the edge
(:func:`optsched.loss_curve`).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ..model.spectrum import Spectrum
from ..schedule import Schedule

__all__ = ["AbstractDynamics", "Trajectory", "BLOWUP", "blown_up", "divergence_flag",
           "scan_steps"]

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


def blown_up(loss, initial_loss, noise) -> Bool[Array, "..."]:
    """Elementwise: is ``loss`` non-finite or above ``BLOWUP * (|L_0| + noise)``?"""
    return ~jnp.isfinite(loss) | (loss > BLOWUP * (jnp.abs(initial_loss) + noise))


def divergence_flag(loss: Float[Array, " P"], noise) -> Bool[Array, ""]:
    """Whether a loss curve (starting at ``L_0``) diverged."""
    return jnp.any(blown_up(loss, loss[0], noise))


class AbstractDynamics(eqx.Module):
    """How the expected loss evolves under a schedule (a strategy object, like a diffrax solver)."""

    @abc.abstractmethod
    def loss_curve(self, spectrum: Spectrum, schedule: Schedule, batch) -> Trajectory:
        """The expected excess loss of SGD on ``spectrum`` following ``schedule``.

        ``batch`` is the batch size used where the schedule has none.
        """


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
