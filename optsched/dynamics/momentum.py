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

**Blocks in closed form.** With :math:`(\eta, \beta, m)` constant the step is an affine map of
the stacked moments :math:`x = (C, R, V) \in \mathbb{R}^{3n}`, :math:`x' = A x + c` (every mode
couples to every other only through the rank-one term :math:`\sum_j w_j\lambda_j C_j`). A block
of ``L`` steps is :math:`\hat A^L` applied to :math:`(x, 1)`, with
:math:`\hat A = \begin{pmatrix} A & c \\ 0 & 1 \end{pmatrix}`, computed by binary powering:
``ceil(log2 L)`` squarings of the :math:`(3n+1)^2` matrix, so a block of any length costs
:math:`O(n^3 \log L)` (:func:`propagate_momentum_blocks`), and its gradient (reverse mode
through the squarings, each block rematerialised) the same. The same map covers the batch size,
so momentum and batch schedules both run in closed form per block.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._precision import with_float64
from ..model.spectrum import Spectrum
from ..schedule import MomentumForm, Schedule, knot_blocks
from .adjoint import final_value
from .base import AbstractDynamics, Trajectory, divergence_flag, scan_steps

__all__ = [
    "MomentumForm",
    "MomentumBlocks",
    "MomentumRecursion",
    "momentum_step",
    "momentum_coefficients",
    "momentum_final_loss",
    "propagate_momentum_blocks",
]


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

    init = _initial_moments(spec)
    _, losses = scan_steps(body, init, (lr_t, beta_t, m_t), checkpoint_every=checkpoint_every)
    return jnp.concatenate([spec.initial_loss()[None], losses])


@with_float64
def momentum_final_loss(
    spec: Spectrum, lr_t, beta_t, m_t, *, form: MomentumForm = "ema"
) -> Float[Array, ""]:
    """``L_T`` of :func:`momentum_losses`, differentiated in reverse mode by the adjoint
    recursion (:func:`~optsched.dynamics.adjoint.final_value`): the solver's objective."""
    momentum_coefficients(jnp.zeros(()), form)
    return final_value(_STEPS[form], _read_loss, spec, _initial_moments(spec), (lr_t, beta_t, m_t))


def _initial_moments(spec: Spectrum) -> Float[Array, "3 n"]:
    """The moments at the start, ``u_0 = 0``: ``C = c_0, R = V = 0``."""
    zeros = jnp.zeros_like(spec.target)
    return jnp.stack([spec.target, zeros, zeros])


def _step_of_inputs(spec: Spectrum, state, u, form: MomentumForm):
    return momentum_step(spec, state, u[0], u[1], u[2], form)


_STEPS = {form: functools.partial(_step_of_inputs, form=form) for form in ("ema", "heavy_ball")}


def _read_loss(spec: Spectrum, state):
    return spec.loss(state[0])


def _affine_step(spec: Spectrum, lr, beta, batch, form: MomentumForm):
    """The augmented matrix ``(3n+1, 3n+1)`` of one step, :math:`(x, 1) \\mapsto (Ax + c, 1)`.

    The step is affine in the moments, so ``A`` is its Jacobian (exact, from forward mode) and
    ``c`` its value at zero moments."""
    n = spec.size

    def step(x):
        return momentum_step(spec, x.reshape(3, n), lr, beta, batch, form).ravel()

    zero = jnp.zeros(3 * n, dtype=spec.lam.dtype)
    c = step(zero)
    A = jax.jacfwd(step)(zero)
    top = jnp.concatenate([A, c[:, None]], axis=1)
    bottom = jnp.zeros((1, 3 * n + 1), dtype=A.dtype).at[0, -1].set(1.0)
    return jnp.concatenate([top, bottom], axis=0)


def _power_apply(M, length, x, bits: int):
    """``M^length @ x`` by binary powering (``length < 2^bits``, integer-valued float)."""
    length = jnp.asarray(length).astype(jnp.int64)

    def body(i, carry):
        P, y = carry
        rest = length >> i

        def use(carry):
            P, y = carry
            y = jnp.where((rest & 1) == 1, P @ y, y)
            return P @ P, y

        return jax.lax.cond(rest > 0, use, lambda c: c, (P, y))

    _, y = jax.lax.fori_loop(0, bits, body, (M, x))
    return y


@with_float64
@functools.partial(jax.jit, static_argnames=("form", "bits"))
def propagate_momentum_blocks(
    spec: Spectrum,
    lr: Float[Array, " K"],
    beta: Float[Array, " K"],
    batch: Float[Array, " K"],
    lengths: Float[Array, " K"],
    *,
    form: MomentumForm = "ema",
    bits: int = 40,
):
    """Apply ``K`` constant blocks of momentum SGD in closed form (module docstring).

    Returns ``(loss after each block, final moments (3, n))``. ``lengths`` may be 0 (padding:
    the identity) and must be below ``2^bits``. Differentiable in ``lr``, ``beta``, ``batch``.
    """
    momentum_coefficients(jnp.zeros(()), form)
    n = spec.size
    zeros = jnp.zeros_like(spec.target)
    x0 = jnp.concatenate([spec.target, zeros, zeros, jnp.ones(1, dtype=zeros.dtype)])

    @jax.checkpoint
    def block(x, lr_k, beta_k, m_k, n_k):
        return _power_apply(_affine_step(spec, lr_k, beta_k, m_k, form), n_k, x, bits)

    def body(x, inp):
        lr_k, beta_k, m_k, n_k = inp
        x = jax.lax.cond(n_k > 0, lambda x: block(x, lr_k, beta_k, m_k, n_k), lambda x: x, x)
        return x, spec.loss(x[:n])

    lengths = jnp.asarray(lengths, dtype=float)
    x, losses = jax.lax.scan(body, x0, (lr, beta, batch, lengths))
    return losses, x[:-1].reshape(3, n)


class MomentumBlocks(AbstractDynamics):
    """Closed-form propagation of momentum SGD over the constant blocks of a ``"previous"``
    schedule (module docstring): exact to rounding, loss reported at block boundaries, cost
    :math:`O(\\log L)` per block of length ``L``."""

    supports_momentum: ClassVar[bool] = True
    supports_linear: ClassVar[bool] = False

    def _loss_curve(self, spectrum: Spectrum, schedule: Schedule, batch) -> Trajectory:
        starts, lengths = knot_blocks(schedule)
        lr = jnp.asarray(schedule.lr)
        beta = (
            jnp.asarray(schedule.momentum) if schedule.momentum is not None else jnp.zeros_like(lr)
        )
        m = jnp.asarray(schedule.batch) if schedule.batch is not None else jnp.full_like(lr, batch)
        losses, _ = propagate_momentum_blocks(
            spectrum, lr, beta, m, lengths, form=schedule.momentum_form
        )
        losses = jnp.concatenate([spectrum.initial_loss()[None], losses])
        steps = jnp.append(starts, schedule.horizon)
        return Trajectory(steps, losses, divergence_flag(losses, spectrum.noise))
