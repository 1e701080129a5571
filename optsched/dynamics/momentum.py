r"""SGD with momentum: the closed per-mode second-moment recursion.

Both forms in use share one update of the velocity ``u`` by the minibatch gradient ``g``:

.. math::
    u_{t+1} = \alpha_t u_t + \gamma_t g_t, \qquad w_{t+1} = w_t - \eta_t u_{t+1},

* ``"ema"`` (the project's convention, docs/model.md): :math:`\alpha = \beta,\ \gamma = 1 - \beta`;
* ``"heavy_ball"`` (optax's trace): :math:`\alpha = \mu,\ \gamma = 1`.

With :math:`\Delta = w - w^*` and, per mode ``k``, :math:`C = E[\Delta_k^2]`,
:math:`R = E[\Delta_k u_k]`, :math:`V = E[u_k^2]`, Gaussian features give
:math:`E[g_k \mid \Delta] = \lambda_k \Delta_k` and

.. math::
    G_k = E[g_k^2] = (1 + 1/m)\lambda_k^2 C_k + \frac{\lambda_k}{m}\Big(\sum_j w_j\lambda_j C_j
          + \text{noise}\Big),

so the diagonal moments close on themselves (off-diagonal moments never enter):

.. math::
    V' &= \alpha^2 V + 2\alpha\gamma\lambda R + \gamma^2 G, \\
    S  &= \alpha R + \gamma\lambda C \quad (= E[\Delta_k u'_k]), \\
    R' &= S - \eta V', \\
    C' &= C - 2\eta S + \eta^2 V'.

The start is :math:`u_0 = 0`: ``C = c_0, R = V = 0``. With ``beta = 0`` (EMA) the recursion is the
plain SGD recursion exactly.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._precision import with_float64
from ..model.spectrum import Spectrum
from ..schedule import MomentumForm, Schedule
from .base import AbstractDynamics, Trajectory, divergence_flag, scan_steps

__all__ = ["MomentumForm", "MomentumRecursion", "momentum_step", "momentum_coefficients"]


def momentum_coefficients(beta, form: MomentumForm):
    """``(alpha, gamma)`` of the velocity update for the given form."""
    if form == "ema":
        return beta, 1.0 - beta
    if form == "heavy_ball":
        return beta, jnp.ones_like(beta)
    raise ValueError(f"momentum form must be 'ema' or 'heavy_ball', got {form!r}")


def momentum_step(spec: Spectrum, state: Float[Array, "3 n"], lr, beta, batch, form: MomentumForm):
    """One step of the moments ``state = (C, R, V)``."""
    C, R, V = state
    lam = spec.lam
    alpha, gamma = momentum_coefficients(beta, form)
    G = (1.0 + 1.0 / batch) * lam**2 * C + (lam / batch) * (
        jnp.sum(spec.weight * lam * C) + spec.noise
    )
    V_new = alpha**2 * V + 2.0 * alpha * gamma * lam * R + gamma**2 * G
    S = alpha * R + gamma * lam * C
    R_new = S - lr * V_new
    C_new = C - 2.0 * lr * S + lr**2 * V_new
    return jnp.stack([C_new, R_new, V_new])


class MomentumRecursion(AbstractDynamics):
    """Exact per-step moments of momentum SGD (EMA or heavy-ball form).

    The schedule's ``momentum`` knots give :math:`\\beta_t` (``mu_t`` for heavy ball, as the
    schedule's ``momentum_form`` says); a schedule without momentum runs with 0.
    """

    supports_momentum: ClassVar[bool] = True

    checkpoint_every: int | None = None

    def _loss_curve(self, spectrum: Spectrum, schedule: Schedule, batch) -> Trajectory:
        lr_t, beta_t, m_t = schedule.per_step(batch)
        losses = momentum_losses(
            spectrum,
            lr_t,
            beta_t,
            m_t,
            form=schedule.momentum_form,
            checkpoint_every=self.checkpoint_every,
        )
        steps = jnp.arange(schedule.horizon + 1)
        return Trajectory(steps, losses, divergence_flag(losses, spectrum.noise))


@with_float64
def momentum_losses(
    spec: Spectrum, lr_t, beta_t, m_t, *, form: MomentumForm = "ema", checkpoint_every=None
) -> Float[Array, " T+1"]:
    """Loss ``L_0 .. L_T`` of momentum SGD for per-step controls."""
    momentum_coefficients(jnp.zeros(()), form)  # validate the form eagerly

    def body(state, inp):
        lr, beta, m = inp
        state = momentum_step(spec, state, lr, beta, m, form)
        return state, spec.loss(state[0])

    zeros = jnp.zeros_like(spec.target)
    init = jnp.stack([spec.target, zeros, zeros])
    _, losses = scan_steps(body, init, (lr_t, beta_t, m_t), checkpoint_every=checkpoint_every)
    return jnp.concatenate([spec.initial_loss()[None], losses])
