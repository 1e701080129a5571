r"""Plain minibatch SGD: the exact per-step recursion and its closed-form block propagation.

One step with learning rate :math:`\eta` and batch :math:`m` maps the per-mode errors
:math:`c_k = E[(w_k - w^*_k)^2]` to

.. math::
    c'_k = d_k c_k + \frac{\eta^2}{m} \lambda_k (L + \sigma^2), \qquad
    d_k = 1 - 2\eta\lambda_k + (1 + 1/m)\eta^2\lambda_k^2,

with :math:`L = \sum_j w_j \lambda_j c_j + \text{offset}`: exact in expectation for Gaussian
features. In matrix form :math:`c' = A c + \beta`, :math:`A = D + u v^\top` (diagonal plus rank
one).

**Block propagation.** On a block of ``n`` steps with constant :math:`(\eta, m)` the map is applied
``n`` times in closed form. Its fixed point :math:`c^\infty` is explicit (Sherman-Morrison):

.. math::
    e_k = 2 - (1 + 1/m)\eta\lambda_k, \quad
    q = \frac{\eta}{m}\sum_k \frac{w_k\lambda_k}{e_k}, \quad
    L^\infty = \frac{q}{1-q}\,\text{noise}, \quad
    c^\infty_k = \frac{\eta}{m}\,\frac{L^\infty + \text{noise}}{e_k},

and with :math:`P = \mathrm{diag}(\sqrt{w})` the matrix :math:`M = P A P^{-1} = D + g s s^\top`
(:math:`g = \eta^2/m`, :math:`s = \sqrt{w}\lambda`) is symmetric PSD, so

.. math:: c_{t+n} = c^\infty + P^{-1} M^n P (c_t - c^\infty),

computed by :func:`~optsched.dynamics.matpow.sym_power_apply`. Cost per block is one ``eigh``
of the ``n_modes x n_modes`` matrix: independent of ``n`` and of the horizon. The map is stable
(spectral radius < 1) iff all :math:`e_k > 0` and :math:`q < 1`; :func:`stability_margin` reports
it.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._precision import with_float64
from ..model.spectrum import Spectrum
from ..schedule import Schedule, knot_blocks
from .adjoint import final_value
from .base import AbstractDynamics, Trajectory, divergence_flag, scan_steps
from .matpow import sym_power_apply

__all__ = [
    "StepRecursion",
    "BlockPropagation",
    "sgd_step",
    "step_final_loss",
    "propagate_blocks",
    "stability_margin",
    "max_stable_lr",
]


def sgd_step(spec: Spectrum, c: Float[Array, " n"], lr, batch) -> Float[Array, " n"]:
    """One exact SGD step of the per-mode errors ``c``."""
    lam = spec.lam
    tracked = jnp.sum(spec.weight * lam * c)
    d = 1.0 - 2.0 * lr * lam + (1.0 + 1.0 / batch) * (lr * lam) ** 2
    return d * c + (lr**2 / batch) * lam * (tracked + spec.noise)


@with_float64
def stability_margin(spec: Spectrum, lr, batch) -> Float[Array, "..."]:
    r"""``1 - rho``-like margin of the constant-``(lr, batch)`` step map: positive iff stable.

    Returns :math:`\min(1 - q, \min_k e_k / 2)` in the notation of the module docstring; the
    spectral radius of the step map is below 1 exactly when this is positive.
    """
    lam = spec.lam
    e = 2.0 - (1.0 + 1.0 / batch) * lr * lam
    q = (lr / batch) * jnp.sum(spec.weight * lam / jnp.where(e > 0, e, 1.0))
    return jnp.minimum(1.0 - q, jnp.min(e) / 2.0)


@with_float64
@functools.partial(jax.jit, static_argnames="iters")
def max_stable_lr(spec: Spectrum, batch, *, iters: int = 100) -> Float[Array, ""]:
    """The largest constant learning rate whose step map is stable (bisection, jit-able)."""
    hi0 = 2.0 / ((1.0 + 1.0 / batch) * jnp.max(spec.lam))

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        ok = stability_margin(spec, mid, batch) > 0
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

    lo, _ = jax.lax.fori_loop(0, iters, body, (jnp.zeros_like(hi0), hi0))
    return lo


def _block(spec: Spectrum, c, lr, batch, length):
    lam, w = spec.lam, spec.weight
    e = 2.0 - (1.0 + 1.0 / batch) * lr * lam
    theta = lr / batch
    q = theta * jnp.sum(w * lam / e)
    l_inf = q / (1.0 - q) * spec.noise
    c_inf = theta * (l_inf + spec.noise) / e
    root_w = jnp.sqrt(w)
    d = 1.0 - 2.0 * lr * lam + (1.0 + 1.0 / batch) * (lr * lam) ** 2
    s = root_w * lam
    M = jnp.diag(d) + (lr**2 / batch) * jnp.outer(s, s)
    y = sym_power_apply(M, length, root_w * (c - c_inf))
    return c_inf + y / root_w


@with_float64
@jax.jit
def propagate_blocks(
    spec: Spectrum, lr: Float[Array, " K"], batch: Float[Array, " K"], lengths: Float[Array, " K"]
):
    """Apply ``K`` constant blocks in closed form. Returns ``(loss after each block, final c)``.

    ``lengths`` may be 0 (an empty block is the identity). Differentiable in ``lr`` and ``batch``.
    """
    lengths = jnp.asarray(lengths, dtype=float)

    def body(c, inp):
        lr_k, m_k, n_k = inp
        # empty blocks (padding) are the identity: skip their eigendecomposition
        c = jax.lax.cond(n_k > 0, lambda c: _block(spec, c, lr_k, m_k, n_k), lambda c: c, c)
        return c, spec.loss(c)

    c_final, losses = jax.lax.scan(body, spec.target, (lr, batch, lengths))
    return losses, c_final


class StepRecursion(AbstractDynamics):
    """The exact per-step recursion (the project's ground truth), any interpolation.

    Attributes:
        checkpoint_every: if set, rematerialise chunks of this many steps in the backward pass
            (memory ``O(T/c + c)`` states instead of ``O(T)``).
    """

    checkpoint_every: int | None = None

    def _loss_curve(self, spectrum: Spectrum, schedule: Schedule, batch) -> Trajectory:
        lr_t, _, m_t = schedule.per_step(batch)
        losses = step_losses(spectrum, lr_t, m_t, checkpoint_every=self.checkpoint_every)
        steps = jnp.arange(schedule.horizon + 1)
        return Trajectory(steps, losses, divergence_flag(losses, spectrum.noise))


@with_float64
def step_losses(spec: Spectrum, lr_t, m_t, *, checkpoint_every=None) -> Float[Array, " T+1"]:
    """Loss ``L_0 .. L_T`` of the per-step recursion for per-step ``lr_t`` and ``m_t``."""

    def body(c, inp):
        lr, m = inp
        c = sgd_step(spec, c, lr, m)
        return c, spec.loss(c)

    _, losses = scan_steps(body, spec.target, (lr_t, m_t), checkpoint_every=checkpoint_every)
    return jnp.concatenate([spec.initial_loss()[None], losses])


@with_float64
def step_final_loss(spec: Spectrum, lr_t, m_t) -> Float[Array, ""]:
    """``L_T`` of the per-step recursion (:func:`step_losses`' last entry), differentiated in
    reverse mode by the adjoint recursion (:func:`~optsched.dynamics.adjoint.final_value`): the
    solver's objective. Use :func:`step_losses` for forward mode."""
    return final_value(_step_of_inputs, _read_loss, spec, spec.target, (lr_t, m_t))


def _step_of_inputs(spec: Spectrum, c, u):
    return sgd_step(spec, c, u[0], u[1])


def _read_loss(spec: Spectrum, c):
    return spec.loss(c)


class BlockPropagation(AbstractDynamics):
    """Closed-form propagation over the constant blocks of a ``"previous"`` schedule.

    Exact (to rounding) for piecewise-constant schedules; the loss is reported at the block
    boundaries. Cost is independent of the horizon.
    """

    supports_linear: ClassVar[bool] = False

    def _loss_curve(self, spectrum: Spectrum, schedule: Schedule, batch) -> Trajectory:
        starts, lengths = knot_blocks(schedule)
        lr = schedule.lr
        m = schedule.batch if schedule.batch is not None else jnp.full_like(lr, batch)
        losses, _ = propagate_blocks(spectrum, lr, m, lengths)
        losses = jnp.concatenate([spectrum.initial_loss()[None], losses])
        steps = jnp.append(starts, schedule.horizon)
        return Trajectory(steps, losses, divergence_flag(losses, spectrum.noise))
