r"""Loss-driven adaptive warm-up for norm-constrained optimisers (Lion, Muon, normalised SGD).

Under the generalised smoothness of the adaptive warm-up paper (seed 002 of the project), the
local curvature shrinks with the suboptimality gap :math:`D = f - f^*`:

.. math::
    L(D) \le K_0 + K_1 D + K_r D^r .

For an update of unit norm (the direction of a norm-constrained optimiser) the step that the
descent lemma allows is :math:`\eta_t = D_t / L(D_t)`, clipped to ``[min_lr, max_lr]``:

.. math::
    \eta_t = \mathrm{clip}\Big(\frac{D_t}{K_0 + K_1 D_t + K_r D_t^r}\Big).

With :math:`K_1 = 0, r = 2` the rate rises while :math:`D` falls from large values and falls
once :math:`D < \sqrt{K_0 / K_r}`: the warm-up ends when the loss says so. :math:`D_t` is the
gap of an exponential moving average of the observed losses (a noisy minibatch loss would make
the rate jitter); a non-finite loss leaves the average, and the rate, unchanged.

* :func:`scale_by_adaptive_warmup`: the optax transformation. It takes the current loss as the
  extra argument ``value`` (as ``optax.contrib.reduce_on_plateau`` does) and multiplies the
  updates by :math:`-\eta_t`, so it replaces ``optax.scale_by_learning_rate`` after a direction
  (``optax.scale_by_lion``, the Muon direction, or normalised gradients).
* :func:`fit_smoothness`: :math:`K_0, K_1, K_r` from curvature-versus-gap measurements on a
  short pilot (:func:`local_smoothness` measures the curvature along a step);
  :func:`estimate_loss_star` the floor :math:`f^*` of the pilot's losses, and
  :func:`smoothness_from_pilot` both in one call.

The rate is a step length for a direction of unit norm. Measure the smoothness in the norm the
optimiser's direction has unit size in (``local_smoothness(..., norm=...)``: ``"linf"`` for
Lion's sign vector, ``"spectral"`` for Muon, ``"l2"`` for normalised SGD); measured in another
(Euclidean for Lion, whose update has Euclidean norm :math:`\sqrt{n}`), the constants are off by
that factor.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "AdaptiveWarmupState",
    "Smoothness",
    "adaptive_rate",
    "estimate_loss_star",
    "fit_smoothness",
    "local_smoothness",
    "scale_by_adaptive_warmup",
    "smoothness_from_pilot",
    "step_norms",
]


class Smoothness(NamedTuple):
    r"""The constants of :math:`L(D) \le K_0 + K_1 D + K_r D^r` and the optimum :math:`f^*`."""

    K0: float
    K1: float
    Kr: float
    r: float
    loss_star: float

    def rate(self, gap):
        r""":math:`D / (K_0 + K_1 D + K_r D^r)`, unclipped (0 at a gap of 0)."""
        gap = jnp.maximum(jnp.asarray(gap), 0.0)
        return gap / (self.K0 + self.K1 * gap + self.Kr * gap**self.r)

    @property
    def peak_gap(self) -> float:
        r"""The gap :math:`D^* = (K_0 / ((r - 1) K_r))^{1/r}` where :math:`D / L(D)` is largest:
        the rate rises while :math:`D > D^*` (the warm-up) and falls below it; ``inf`` when
        :math:`K_0` or :math:`K_r` is 0 (then no warm-up emerges from the loss)."""
        if self.K0 <= 0 or self.Kr <= 0:
            return math.inf
        return (self.K0 / ((self.r - 1) * self.Kr)) ** (1 / self.r)


class AdaptiveWarmupState(NamedTuple):
    """``count`` of updates, ``average`` loss (EMA, bias-corrected through ``weight``), the
    ``rate`` last applied, and whether the warm-up is ``over`` (only with a ``decay``)."""

    count: jax.Array
    average: jax.Array
    weight: jax.Array
    rate: jax.Array
    over: jax.Array


def adaptive_rate(
    smoothness: Smoothness, loss, *, min_lr: float, max_lr: float, scale: float = 1.0
):
    """The clipped rate ``scale * D / L(D)`` at an (averaged) loss; ``min_lr`` where the loss is
    not finite."""
    loss = jnp.asarray(loss)
    eta = scale * smoothness.rate(loss - smoothness.loss_star)
    eta = jnp.clip(eta, min_lr, max_lr)
    return jnp.where(jnp.isfinite(eta), eta, min_lr)


def scale_by_adaptive_warmup(
    smoothness: Smoothness,
    *,
    min_lr: float,
    max_lr: float,
    smoothing: float = 0.9,
    decay: optax.Schedule | None = None,
    relative: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Multiply updates by :math:`-\eta_t`, the loss-driven rate (module docstring).

    Call ``update(updates, state, params, value=loss)`` with the loss of the current step.

    Without ``decay`` the rate is the clipped loss-driven one throughout: it rises while the gap
    is large and falls by itself once :math:`D < \sqrt{K_0/K_r}`. With ``decay`` (an optax
    schedule of the step with values in ``[0, 1]``, e.g. a cosine of peak 1), the loss decides
    only the warm-up: the rate is :math:`\mathrm{clip}(D_t/L(D_t))\, d(t)` until the loss-driven
    rate first reaches ``max_lr``, and :math:`\eta_{max}\, d(t)` from then on, whatever the loss
    does. That is a fixed warm-up ``min(1, t / t_w) d(t)`` whose length :math:`t_w` the loss sets.

    Args:
        smoothness: :math:`K_0, K_1, K_r, r, f^*` (:func:`fit_smoothness`).
        min_lr, max_lr: the clip; ``0 < min_lr <= max_lr``.
        smoothing: EMA factor of the observed losses, in ``[0, 1)`` (0: no averaging).
        decay: the multiplier after (and during) the warm-up, or ``None``.
        relative: use only the *shape* of :math:`D / L(D)` and take its scale from ``max_lr``:
            :math:`\eta_t = \eta_{max}\,\rho(D_t) / \rho(D^*)` with :math:`\rho(D) = D/L(D)`
            and :math:`D^*` its maximiser (:attr:`Smoothness.peak_gap`), so the warm-up ends
            when the gap reaches :math:`D^*` whatever the constants' overall scale (the
            "standard hyper-parameters only" form; the absolute rate of a sign or orthogonalised
            direction is conservative by a factor that grows with the width). Needs
            :math:`K_0, K_r > 0`.
    """
    if not (0 < min_lr <= max_lr and math.isfinite(max_lr)):
        raise ValueError(f"need 0 < min_lr <= max_lr < inf, got {min_lr}, {max_lr}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    for name in ("K0", "K1", "Kr", "r"):
        value = getattr(smoothness, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"smoothness.{name} must be finite and >= 0, got {value}")
    if relative and not math.isfinite(smoothness.peak_gap):
        raise ValueError("relative=True needs K0 > 0 and Kr > 0 (a rate that peaks)")
    if smoothness.K0 + smoothness.K1 + smoothness.Kr <= 0:
        raise ValueError("smoothness needs K0, K1 or Kr positive")
    # relative: rho(D) / rho(D*) in (0, 1], times max_lr
    scale = max_lr / float(smoothness.rate(smoothness.peak_gap)) if relative else 1.0

    def init_fn(params):
        del params
        zero = jnp.zeros([], jnp.float32)
        return AdaptiveWarmupState(
            jnp.zeros([], jnp.int32),
            zero,
            zero,
            jnp.asarray(min_lr, jnp.float32),
            jnp.zeros([], bool),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params
        if "value" not in extra_args:
            raise TypeError("scale_by_adaptive_warmup needs the loss: update(..., value=loss)")
        value = jnp.asarray(extra_args["value"], jnp.float32)
        ok = jnp.isfinite(value)
        weight = jnp.where(ok, smoothing * state.weight + (1 - smoothing), state.weight)
        average = jnp.where(ok, smoothing * state.average + (1 - smoothing) * value, state.average)
        seen = weight > 0
        loss = jnp.where(seen, average / jnp.where(seen, weight, 1.0), jnp.inf)
        driven = adaptive_rate(smoothness, loss, min_lr=min_lr, max_lr=max_lr, scale=scale)
        over = state.over
        if decay is None:
            rate = jnp.where(seen, driven, state.rate)
        else:  # the warm-up ends for good the first time the loss allows max_lr
            over = over | (seen & (driven >= max_lr))
            warm = jnp.where(over, max_lr, jnp.where(seen, driven, min_lr))
            rate = warm * jnp.clip(jnp.asarray(decay(state.count), jnp.float32), 0.0, 1.0)
        rate = rate.astype(jnp.float32)
        updates = jax.tree_util.tree_map(lambda u: (-rate).astype(u.dtype) * u, updates)
        return updates, AdaptiveWarmupState(state.count + 1, average, weight, rate, over)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


NORMS = ("l2", "linf", "spectral")


def step_norms(grad_change, step, norm: str = "l2"):
    r"""``(dual norm of grad_change, norm of step)`` over all leaves (jit-able).

    ``norm`` is the norm the optimiser's direction has unit size in, and the pair is what the
    smoothness :math:`\|\nabla f(x') - \nabla f(x)\|_* \le L \|x' - x\|` is stated with:

    * ``"l2"`` (normalised SGD): Euclidean, self-dual;
    * ``"linf"`` (Lion, sign descent): :math:`\max_i |\Delta x_i|`, dual
      :math:`\sum_i |\Delta g_i|`;
    * ``"spectral"`` (Muon): the largest singular value over the matrices, dual the sum of their
      nuclear norms (a leaf that is not 2-d counts as a one-row matrix: its Euclidean norm).
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    g, x = jax.tree.leaves(grad_change), jax.tree.leaves(step)
    if norm == "l2":
        return (
            jnp.sqrt(sum(jnp.sum(a**2) for a in g)),
            jnp.sqrt(sum(jnp.sum(a**2) for a in x)),
        )
    if norm == "linf":
        return sum(jnp.sum(jnp.abs(a)) for a in g), jnp.max(
            jnp.stack([jnp.max(jnp.abs(a)) for a in x])
        )

    def singular(a):
        a = a if a.ndim == 2 else jnp.reshape(a, (1, -1))
        return jnp.linalg.svd(a, compute_uv=False)

    return (
        sum(jnp.sum(singular(a)) for a in g),
        jnp.max(jnp.stack([jnp.max(singular(a)) for a in x])),
    )


def local_smoothness(grad_fn, params, next_params, *, norm: str = "l2") -> float:
    r"""The smoothness measured along a step, what the pilot records against the gap:

    .. math:: \hat L = \|\nabla f(x') - \nabla f(x)\|_* \,/\, \|x' - x\|

    in the optimiser's norm (:func:`step_norms`; ``"l2"`` Euclidean). The rate
    :math:`D / L(D)` built from such measurements is a step length in that norm, which for Lion
    (whose step has :math:`\ell_\infty` norm equal to its learning rate) and Muon (spectral
    norm) is the optimiser's own learning rate.
    """
    g1, g0 = grad_fn(next_params), grad_fn(params)
    dual, primal = step_norms(
        jax.tree.map(lambda a, b: a - b, g1, g0),
        jax.tree.map(lambda a, b: a - b, next_params, params),
        norm,
    )
    if float(primal) == 0:
        raise ValueError("params and next_params are equal: no step to measure along")
    return float(dual) / float(primal)


def fit_smoothness(gaps, curvatures, *, r: float = 2.0, loss_star: float = 0.0) -> Smoothness:
    r"""Fit :math:`K_0, K_1, K_r \ge 0` to measured curvatures :math:`L_i` at gaps :math:`D_i`.

    Non-negative least squares on :math:`L_i \approx K_0 + K_1 D_i + K_r D_i^r`, relative to each
    measurement (rows divided by :math:`L_i`). ``loss_star`` is stored with the constants (the
    gaps must have been measured against it).
    """
    D = np.asarray(gaps, dtype=np.float64)
    L = np.asarray(curvatures, dtype=np.float64)
    if D.shape != L.shape or D.ndim != 1 or D.size < 3:
        raise ValueError("gaps and curvatures must be 1-d of the same length, at least 3")
    if not (np.all(np.isfinite(D)) and np.all(np.isfinite(L))):
        raise ValueError("gaps and curvatures must be finite")
    if np.any(D < 0) or np.any(L <= 0):
        raise ValueError("gaps must be >= 0 and curvatures > 0")
    if not (math.isfinite(r) and r > 1):
        raise ValueError(f"r must be > 1 (K1 D covers r = 1), got {r}")
    A = np.stack([np.ones_like(D), D, D**r], axis=1) / L[:, None]
    coef = _nnls(A, np.ones_like(D))
    return Smoothness(float(coef[0]), float(coef[1]), float(coef[2]), float(r), float(loss_star))


def estimate_loss_star(steps, losses) -> float:
    r"""The loss floor :math:`f^*` of a pilot's curve, fitted as :math:`f^* + A\,t^{-\alpha}`.

    For each :math:`\alpha` on a grid over ``[0.02, 3]`` the floor and :math:`A \ge 0` are linear
    least squares (the floor held in ``[0, min f)``); the :math:`\alpha` with the least residual
    wins. A short pilot sees little of the floor, so read this as the floor of the power law
    that fits the pilot, not as the loss the run will reach.

    Args:
        steps: positive, strictly increasing steps, shape ``(n,)``, ``n >= 4``.
        losses: the (smoothed) losses at them, finite and positive.
    """
    t = np.asarray(steps, dtype=np.float64)
    f = np.asarray(losses, dtype=np.float64)
    if t.shape != f.shape or t.ndim != 1 or t.size < 4:
        raise ValueError("steps and losses must be 1-d of the same length, at least 4")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(f)) and np.all(f > 0)):
        raise ValueError("steps and losses must be finite, losses positive")
    if t[0] <= 0 or np.any(np.diff(t) <= 0):
        raise ValueError("steps must be positive and strictly increasing")
    best, best_cost = 0.0, math.inf
    for alpha in np.geomspace(0.02, 3.0, 200):
        x = t**-alpha
        A = np.stack([np.ones_like(x), x], axis=1)
        (floor, amp), *_ = np.linalg.lstsq(A, f, rcond=None)
        floor = float(np.clip(floor, 0.0, (1 - 1e-9) * f.min()))
        amp = max(float(np.dot(x, f - floor) / np.dot(x, x)), 0.0)
        cost = float(np.sum((floor + amp * x - f) ** 2))
        if cost < best_cost:
            best, best_cost = floor, cost
    return best


def smoothness_from_pilot(steps, losses, curvatures, *, r: float = 2.0) -> Smoothness:
    r""":math:`f^*` (:func:`estimate_loss_star`) and then :math:`K_0, K_1, K_r`
    (:func:`fit_smoothness` on the gaps :math:`D_i = f_i - f^*`) from one pilot.

    ``curvatures[i]`` is the curvature measured at ``steps[i]`` along the optimiser's step
    (:func:`local_smoothness`), in the norm the rate is meant for (module docstring).
    """
    loss_star = estimate_loss_star(steps, losses)
    gaps = np.asarray(losses, dtype=np.float64) - loss_star
    return fit_smoothness(gaps, curvatures, r=r, loss_star=loss_star)


def _nnls(A, b):
    """Non-negative least squares for a few columns: the best of every subset of active
    columns (exact for three columns)."""
    n = A.shape[1]
    best, best_cost = np.zeros(n), float(np.sum(b**2))
    for mask in range(1, 2**n):
        cols = [j for j in range(n) if mask >> j & 1]
        sol, *_ = np.linalg.lstsq(A[:, cols], b, rcond=None)
        if np.all(sol >= 0):
            x = np.zeros(n)
            x[cols] = sol
            cost = float(np.sum((A @ x - b) ** 2))
            if cost < best_cost:
                best, best_cost = x, cost
    return best
