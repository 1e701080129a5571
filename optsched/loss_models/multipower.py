r"""The multi-power law of Luo et al. (2025): an empirical loss model of learning-rate schedules.

With per-step rates :math:`\eta_\tau` (normalised by ``lr_unit``), the loss after ``t`` steps is

.. math::
    L(t) = L_0 + A\,S_1(t)^{-\alpha} - LD(t), \qquad S_1(t) = \sum_{\tau < t} \eta_\tau,

.. math::
    LD(t) = B \sum_{k = p + 1}^{t - 1} (\eta_{k-1} - \eta_k)\,
        G\big(\eta_k^{-\gamma} S_k(t)\big), \quad S_k(t) = \sum_{\tau = k}^{t - 1} \eta_\tau,
    \quad G(x) = 1 - (C x + 1)^{-\beta},

where ``p`` is the step of the peak rate. :math:`S_1` counts the warmup too, which is the
paper's :math:`S_1 + S_W`; the loss reduction :math:`LD` sums over the decay after the peak (the
paper's schedules warm up, then decay). Seven parameters :math:`(L_0, A, \alpha, B, C, \beta,
\gamma)`, fitted by :func:`fit_multi_power_law` by least squares on log losses. At ``t = 0`` the
law is undefined (:math:`S_1 = 0`); fits skip step 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .._precision import with_float64
from .base import AbstractLossModel
from .fitting import (
    covariance,
    least_squares_fit,
    pilot_arrays,
    standard_errors,
)

__all__ = ["MultiPowerLaw", "fit_multi_power_law"]

PARAMETERS = ("L0", "A", "alpha", "B", "C", "beta", "gamma")


class MultiPowerLaw(AbstractLossModel):
    """The multi-power law; rates are divided by ``lr_unit`` (the pilot runs' peak) first.

    Attributes:
        params: ``(L0, A, alpha, B, C, beta, gamma)``.
        lr_unit: the learning rate that counts as 1.
        stderr: standard errors of :data:`PARAMETERS` (empty when not fitted).
        residual_rms: root-mean-square residual of the log loss at the fit.
    """

    params: jax.Array
    lr_unit: float
    stderr: dict
    residual_rms: float = float("nan")
    covariance: np.ndarray | None = None

    @property
    def lr_scale(self) -> float:
        """Model (normalised) learning rate per real one: ``1 / lr_unit``."""
        return 1.0 / float(self.lr_unit)

    @with_float64
    def curve_at(self, lr, steps):
        """Loss after ``steps`` updates only (``O(len(steps) T)``; what fits and predictions
        at logged steps use)."""
        return _mpl_at(self.params, jnp.asarray(lr) / self.lr_unit, steps)

    @with_float64
    def curve(self, lr):
        """Loss after ``0 .. T`` steps (``inf`` at step 0, where the law is undefined)."""
        return _mpl_curve(self.params, jnp.asarray(lr) / self.lr_unit)

    def values(self) -> dict[str, float]:
        return {k: float(v) for k, v in zip(PARAMETERS, self.params, strict=True)}

    def parameters(self):
        return np.asarray(self.params, dtype=np.float64), self.covariance

    def curve_at_parameters(self, values, lr, steps):
        return _mpl_at(values, jnp.asarray(lr) / self.lr_unit, steps)

    def describe(self) -> dict:
        return {
            "kind": "MultiPowerLaw",
            "values": self.values(),
            "lr_unit": self.lr_unit,
            "stderr": self.stderr,
            "residual_rms": self.residual_rms,
        }


def _mpl_curve(params, lr):
    return _mpl_at(params, lr, jnp.arange(lr.shape[0] + 1))


def drop_steps(lr) -> np.ndarray:
    """The steps ``k`` after the peak at which the rate changes (``lr[k-1] != lr[k]``): the
    only terms of the loss-drop sum that are not zero (concrete rates only)."""
    lr = np.asarray(lr)
    k = np.arange(1, lr.shape[0])
    return k[(k > int(np.argmax(lr))) & (lr[:-1] != lr[1:])]


def _mpl_at(params, lr, steps, drops=None):
    """The law after ``steps`` updates: ``O(len(steps) * K)`` time and ``O(K)`` memory, with
    ``K = T`` or, given ``drops`` (:func:`drop_steps` of these rates; what fits pass), the number
    of steps whose rate changes: the loss-drop sum runs once per requested step over the terms
    that can be non-zero, never over all ``T`` steps for every step."""
    L0, A, alpha, B, C, beta, gamma = params
    T = lr.shape[0]
    cum = jnp.concatenate([jnp.zeros(1), jnp.cumsum(lr)])  # cum[t] = S_1(t)
    if drops is None:
        k = jnp.arange(T)
        peak = jnp.argmax(lr)
        drop = jnp.where(k > peak, jnp.concatenate([jnp.zeros(1), lr[:-1] - lr[1:]]), 0.0)
    else:
        k = jnp.asarray(drops, dtype=jnp.int32)
        drop = lr[k - 1] - lr[k]
    lr_k = lr[k]
    scale = C * jnp.where(lr_k > 0, lr_k, 1.0) ** (-gamma)

    def ld(t):
        s_k = jnp.maximum(cum[t] - cum[k], 0.0)  # S_k(t) for k < t
        g = 1.0 - (scale * s_k + 1.0) ** (-beta)
        return B * jnp.sum(jnp.where(k < t, drop * g, 0.0))

    if k.shape[0] == 0:  # no drop anywhere (a constant rate)
        return _mpl_power(L0, A, alpha, cum[jnp.asarray(steps)])

    steps = jnp.asarray(steps)
    return _mpl_power(L0, A, alpha, cum[steps]) - jax.lax.map(ld, steps)


def _mpl_power(L0, A, alpha, s1):
    """:math:`L_0 + A S_1^{-\\alpha}`, ``inf`` where :math:`S_1 = 0`."""
    safe = jnp.where(s1 > 0, s1, 1.0)  # a finite stand-in keeps gradients finite
    return jnp.where(s1 > 0, L0 + A * safe ** (-alpha), jnp.inf)


def _natural(theta):
    return jnp.exp(theta)


def _residuals(theta, runs):
    params = _natural(theta)
    out = []
    for lr, steps, log_y, drops in runs:
        pred = _mpl_at(params, lr, steps, drops)
        out.append(jnp.log(jnp.maximum(pred, 1e-300)) - log_y)
    return jnp.concatenate(out)


@with_float64
def fit_multi_power_law(runs: Sequence, *, max_steps: int = 300) -> MultiPowerLaw:
    """Fit the multi-power law to pilot runs (:class:`optsched.loss_models.fitted.PilotRun`),
    skipping step 0.

    All seven parameters are positive (fitted in log space). Starts: :math:`L_0` at 80% of the
    lowest loss, :math:`A` matching the first observed loss, :math:`\\alpha \\in \\{0.3, 0.6\\}`,
    :math:`C \\in \\{0.5, 5\\}`, :math:`B` a tenth of the loss range,
    :math:`\\beta = \\gamma = 0.5`; the best of the four wins.
    """
    runs = list(runs)
    arrays, unit, y_min, y_max = pilot_arrays(runs, normalise=True, skip_first_step=True)
    arrays = [(lr, steps, log_y, drop_steps(lr)) for lr, steps, log_y in arrays]
    first = runs[0]
    i = int(np.argmax(first.steps > 0))
    s_first = float(jnp.sum(first.schedule.per_step(1.0)[0][: first.steps[i]])) / unit
    starts = []
    for alpha in (0.3, 0.6):
        for C in (0.5, 5.0):
            A = max(first.loss[i] - 0.8 * y_min, 1e-12) * s_first**alpha
            starts.append(
                [
                    math.log(0.8 * y_min),
                    math.log(A),
                    math.log(alpha),
                    math.log(0.1 * (y_max - y_min) + 1e-12),
                    math.log(C),
                    math.log(0.5),
                    math.log(0.5),
                ]
            )
    theta, cost, J = least_squares_fit(_residuals, starts, arrays, max_steps=max_steps)
    cov = covariance(J, cost, _natural, theta)
    return MultiPowerLaw(
        _natural(theta),
        unit,
        standard_errors(cov, PARAMETERS),
        math.sqrt(cost / J.shape[0]),
        covariance=cov,
    )
