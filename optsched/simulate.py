r"""Monte-Carlo SGD on sampled Gaussian data: the ground truth the recursions are judged by.

Each run draws fresh minibatches :math:`x \sim N(0, \Lambda)` in the eigenbasis
(:math:`x_k = \sqrt{\lambda_k} z_k`, ``k = 1 .. M`` teacher modes), labels
:math:`y = \sum_{k \le M} w^*_k x_k + \sigma \epsilon` with :math:`(w^*_k)^2 = k^{-(a-b)}`, and
trains a student that sees the first ``N`` features, from ``w = 0``:

.. math::
    g_t = \frac{1}{m_t} \sum_{i<m_t} x_i (x_i^\top w_t - y_i), \quad
    u_{t+1} = \alpha_t u_t + \gamma_t g_t, \quad w_{t+1} = w_t - \eta_t u_{t+1}

(plain SGD when the schedule has no momentum; the forms are those of
:mod:`optsched.dynamics.momentum`). The excess loss of a run is exact given its weights:
:math:`\sum_{k \le N} \lambda_k (w_k - w^*_k)^2 + \sum_{N<k\le M} k^{-a}`. Runs are independent
and vmapped.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._precision import with_float64
from .dynamics.base import blown_up
from .dynamics.momentum import momentum_coefficients
from .evaluate import DivergenceError
from .model.problem import PowerLawProblem
from .schedule import Schedule

__all__ = ["SimulationResult", "simulate"]


class SimulationResult(eqx.Module):
    """Mean and standard error of the excess loss over independent SGD runs.

    Attributes:
        steps: number of updates at each point, ``0 .. T``, shape ``(T+1,)``.
        mean: mean excess loss over runs, shape ``(T+1,)``.
        stderr: standard error of that mean, shape ``(T+1,)``.
        runs: number of runs.
    """

    steps: Int[Array, " P"]
    mean: Float[Array, " P"]
    stderr: Float[Array, " P"]
    runs: int = eqx.field(static=True)


@with_float64
def simulate(
    problem: PowerLawProblem,
    schedule: Schedule,
    *,
    runs: int = 256,
    seed: int = 0,
) -> SimulationResult:
    """Run ``runs`` independent SGD trainings on sampled data and average their loss curves.

    Needs finite ``features`` and ``teacher_modes`` (each sampled explicitly). Batch sizes are
    rounded to integers at every step. A mean loss that blows up (non-finite, or above
    ``BLOWUP`` times the initial loss plus noise, as in :func:`optsched.loss_curve`) raises
    :class:`~optsched.DivergenceError` naming the step.
    """
    N, M = problem.features, problem.teacher_modes
    if math.isinf(M):
        raise ValueError("simulate needs a finite number of teacher modes (features/teacher_modes)")
    if runs < 2:
        raise ValueError(f"runs must be >= 2 to estimate a standard error, got {runs}")
    N, M = int(N), int(M)
    a, b, sigma = problem.a, problem.b, problem.sigma
    k = jnp.arange(1, M + 1, dtype=float)
    lam = k ** (-b)
    w_star = k ** (-(a - b) / 2.0)
    tail = jnp.sum(lam[N:] * w_star[N:] ** 2)

    lr_t, beta_t, m_t = schedule.per_step(problem.batch)
    m_t = jnp.round(m_t)
    m_max = int(np.max(np.asarray(m_t)))
    alpha_t, gamma_t = momentum_coefficients(beta_t, schedule.momentum_form)
    root_lam = jnp.sqrt(lam)

    def loss_of(w):
        return jnp.sum(lam[:N] * (w - w_star[:N]) ** 2) + tail

    def one_run(key):
        def step(carry, inp):
            w, u, key = carry
            lr, alpha, gamma, m = inp
            key, kx, ke = jax.random.split(key, 3)
            x = jax.random.normal(kx, (m_max, M)) * root_lam
            y = x @ w_star + sigma * jax.random.normal(ke, (m_max,))
            mask = (jnp.arange(m_max) < m) / m
            resid = x[:, :N] @ w - y
            g = x[:, :N].T @ (mask * resid)
            u = alpha * u + gamma * g
            w = w - lr * u
            return (w, u, key), loss_of(w)

        zeros = jnp.zeros(N)
        _, losses = jax.lax.scan(step, (zeros, zeros, key), (lr_t, alpha_t, gamma_t, m_t))
        return jnp.concatenate([loss_of(zeros)[None], losses])

    keys = jax.random.split(jax.random.PRNGKey(seed), runs)
    curves = jax.jit(jax.vmap(one_run))(keys)
    mean = jnp.mean(curves, axis=0)
    stderr = jnp.std(curves, axis=0, ddof=1) / math.sqrt(runs)
    bad = np.asarray(blown_up(mean, mean[0], sigma**2 + tail))
    if bad.any():  # a blown-up mean is divergence, not a loss to report
        step = int(np.argmax(bad))
        lr = float(schedule.lr_at(max(step - 1, 0)))
        raise DivergenceError(
            f"SGD diverges in the simulation: the mean loss blows up by step {step} "
            f"(lr = {lr:.4g} there)"
        )
    return SimulationResult(jnp.arange(schedule.horizon + 1), mean, stderr, runs)
