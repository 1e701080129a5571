r"""Convex-optimisation models of schedules: the last-iterate bound and gradient-norm refinement.

**The bound.** For SGD on a convex, ``G``-Lipschitz problem started at distance ``D`` from a
minimiser, the last iterate after ``T`` steps with rates :math:`\eta_1 .. \eta_T` satisfies
(Defazio et al. 2023; the form used by Schaipp et al. 2025)

.. math::
    E f(x_T) - f^* \le \Omega_T = \frac{D^2 + G^2 \sum_{t=1}^T \eta_t^2}{2 \sum_{t=1}^T \eta_t}
      + \frac{G^2}{2} \sum_{k=1}^{T-1} \frac{\eta_k}{\sum_{t=k+1}^T \eta_t}
        \cdot \frac{\sum_{t=k}^T \eta_t^2}{\sum_{t=k}^T \eta_t}.

As a loss model (:class:`ConvexBound`) the observed loss is :math:`L_\infty + s\,\Omega_t`; only
:math:`u = s D^2` and :math:`v = s G^2` are identifiable. For a schedule shape :math:`\eta_t =
\gamma\,\hat\eta_t` the bound is :math:`u / (2\gamma \Sigma) + \gamma v Q(\hat\eta)`, so the best
base rate has the closed form :math:`\gamma^* = \sqrt{u / (2 v \Sigma Q)}`
(:meth:`ConvexBound.optimal_peak`).

**Step convention.** :math:`\Omega_t` bounds the iterate after ``t`` steps taken with the
``t`` rates ``lr[0 .. t-1]`` (Schaipp et al.'s package passes one rate more, the one the next
step would use). The last rate never has a term of its own in the sum. A rate of 0 is a step
that does not move: trailing zero rates leave the bound where the schedule without them puts
it (the terms whose later rates are all 0 are dropped, where the reference returns inf or NaN).

**Per-step gradient norms.** With :math:`G_t` in place of :math:`G` (``v`` an array), every
:math:`\eta_t^2 G^2` becomes :math:`\eta_t^2 G_t^2`.

**Refinement** (Defazio et al. 2023), derived from the bound. Write the rates through weights,
:math:`\eta_t = w_t W_{t+1} / W_1` with :math:`W_t = \sum_{p \ge t} w_p`. In the continuum
limit the remaining area is :math:`\int_t^T \eta = W(t)^2 / (2 W_1)`; substituting in the sum
term of :math:`\Omega_T` and integrating by parts (:math:`d(W^{-2}) = 2 w W^{-3} dt`), the
:math:`\int \eta^2 G^2` pieces cancel and

.. math::
    \Omega_T = \frac{D^2 + \int w_t^2 G_t^2\,dt}{\int w_t\,dt},

which is smallest for :math:`w_t \propto G_t^{-2}` (stationarity: :math:`2 w_t G_t^2 \int w =
D^2 + \int w^2 G^2` for every ``t``). So the refined rates are

.. math::
    \eta_t \propto g_t^{-2} \sum_{p > t} g_p^{-2},

linear decay for constant norms, with the optimum :math:`\Omega^* = 2D / \sqrt{\sum_t
g_t^{-2}}` at the best peak (:func:`refine_from_grad_norms`). The discrete bound differs by
:math:`O(1/T)`: against a direct minimisation of :math:`\Omega_T` over all ``T`` rates the
refined schedule is 6.2% / 1.7% above the optimum at T = 100 / 400 for norms falling from 3
to 1, 0.8% / 0.2% for rising norms (``benchmarks/convex_bound.py``); weighting by
:math:`\sum_{p>t} g_p^2` instead, as optsched 0.2 did, stays 15-19% above for falling norms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._precision import with_float64
from ..schedule import Schedule
from .base import AbstractLossModel
from .fitting import (
    covariance,
    least_squares_fit,
    pad_to_bucket,
    pilot_arrays,
    pilot_peaks,
    standard_errors,
)

__all__ = [
    "ConvexBound",
    "best_peak_bound",
    "convex_bound",
    "convex_bound_at",
    "direct_minimum",
    "fit_convex_bound",
    "refine_from_grad_norms",
]


@with_float64
def convex_bound(lr, u=1.0, v=1.0):
    r""":math:`\Omega_t` after ``t = 1 .. T`` steps of rates ``lr`` (shape ``(T,)``), with
    :math:`D^2 = u` and :math:`G^2 = v`; jit-able and differentiable in ``lr``."""
    lr = jnp.asarray(lr, dtype=float)
    return convex_bound_at(lr, jnp.arange(1, lr.shape[0] + 1), u, v)


@jax.jit
def convex_bound_at(lr, steps, u=1.0, v=1.0):
    r""":math:`\Omega_t` at the given ``steps`` ``t >= 1`` only: ``O(T)`` time per step (one
    pass of cumulative sums, then ``O(T)`` per requested step) and ``O(T)`` memory; what fits at
    logged steps and the solver's final loss use.

    ``v`` is :math:`G^2` (a scalar) or the per-step :math:`G_t^2` (shape ``(T,)``, the bound
    with :math:`\eta_t^2 G_t^2` in place of :math:`\eta_t^2 G^2` in both sums). Compiled once
    per shape."""
    lr = jnp.asarray(lr, dtype=float)
    T = lr.shape[0]
    v = jnp.asarray(v, dtype=float)
    if v.ndim != 0 and v.shape != (T,):
        raise ValueError(
            f"v must be a scalar G^2 or per-step G_t^2 of shape ({T},), got shape {v.shape}"
        )
    g2 = jnp.broadcast_to(v, (T,))
    cum = jnp.concatenate([jnp.zeros(1), jnp.cumsum(lr)])  # cum[t] = sum_{tau < t}
    cum2 = jnp.concatenate([jnp.zeros(1), jnp.cumsum(lr**2 * g2)])
    k = jnp.arange(T)

    def omega(t):  # after t steps (rates lr[0 .. t-1])
        total, total2 = cum[t], cum2[t]
        after = cum[t] - cum[k + 1]  # sum_{j = k+1}^{t-1} lr_j
        from_k, from_k2 = cum[t] - cum[k], cum2[t] - cum2[k]
        ok = (k < t - 1) & (after > 0)
        term = jnp.where(
            ok, lr * from_k2 / (jnp.where(ok, after, 1.0) * jnp.where(ok, from_k, 1.0)), 0.0
        )
        safe = jnp.where(total > 0, total, 1.0)
        value = (u + total2) / (2.0 * safe) + 0.5 * jnp.sum(term)
        return jnp.where(total > 0, value, jnp.inf)

    return jax.lax.map(omega, jnp.asarray(steps))


class ConvexBound(AbstractLossModel):
    r"""The last-iterate bound as a loss model: :math:`L_t = L_\infty + \Omega_t(u, v)`.

    Attributes:
        u, v: :math:`s D^2` and :math:`s G^2` in loss units (rates divided by ``lr_unit``).
        loss_floor: :math:`L_\infty`.
        lr_unit: the learning rate that counts as 1.
        stderr: standard errors of ``u, v, loss_floor`` (empty when not fitted).
    """

    u: float
    v: float
    loss_floor: float
    lr_unit: float = 1.0
    stderr: dict | None = None
    covariance: np.ndarray | None = None
    pilot_peaks: tuple[float, float] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        checks = {"u": self.u, "v": self.v, "lr_unit": self.lr_unit}
        for name, value in checks.items():
            if isinstance(value, int | float) and not (math.isfinite(value) and value > 0):
                raise ValueError(f"ConvexBound: {name} must be a positive number, got {value!r}")
        floor = self.loss_floor
        if isinstance(floor, int | float) and not math.isfinite(floor):
            raise ValueError(f"ConvexBound: loss_floor must be finite, got {floor!r}")

    def parameters(self):
        return np.array([self.u, self.v, self.loss_floor]), self.covariance

    def curve_at_parameters(self, values, lr, steps):
        """:meth:`curve_at` at the parameters ``values = (u, v, loss_floor)`` (differentiable in
        them). The rates are padded with zeros to a power of two (at least 2^17 steps): the
        bound after ``t`` steps reads only the first ``t`` rates, and candidates of different
        lengths share one compiled program (what a ranking's derivatives need)."""
        steps = jnp.maximum(jnp.asarray(steps), 1)
        padded = pad_to_bucket(np.asarray(lr, dtype=np.float64) / self.lr_unit, 0.0, 1 << 17)
        return values[2] + convex_bound_at(padded, steps, values[0], values[1])

    @property
    def lr_scale(self) -> float:
        """Model (normalised) learning rate per real one: ``1 / lr_unit``."""
        return 1.0 / float(self.lr_unit)

    @with_float64
    def curve_at(self, lr, steps):
        """Loss after ``steps`` updates only (``inf`` at step 0)."""
        steps = jnp.asarray(steps)
        omega = convex_bound_at(
            jnp.asarray(lr) / self.lr_unit, jnp.maximum(steps, 1), self.u, self.v
        )
        return jnp.where(steps > 0, self.loss_floor + omega, jnp.inf)

    @with_float64
    def curve(self, lr):
        """Loss after ``0 .. T`` steps (``inf`` at step 0, where the bound is undefined)."""
        omega = convex_bound(jnp.asarray(lr) / self.lr_unit, self.u, self.v)
        return jnp.concatenate([jnp.full(1, jnp.inf), self.loss_floor + omega])

    def describe(self) -> dict:
        return {
            "kind": "ConvexBound",
            "values": {"u": self.u, "v": self.v, "loss_floor": self.loss_floor},
            "lr_unit": self.lr_unit,
            "stderr": self.stderr,
        }

    @with_float64
    def optimal_peak(self, shape) -> float:
        r"""The closed-form best base rate :math:`\gamma^*` for the per-step ``shape`` (peak 1),
        in real units: :math:`\gamma^* = \sqrt{u / (2 v \Sigma Q)}`."""
        s = jnp.asarray(shape, dtype=float)
        sigma = float(jnp.sum(s))
        q = float(convex_bound(s, 0.0, 1.0)[-1])  # Omega with D = 0, G = 1 is Q(s) for gamma=1
        return self.lr_unit * math.sqrt(self.u / (2.0 * self.v * sigma * q))


def _natural(theta, floor_max):
    return jnp.stack([jnp.exp(theta[0]), jnp.exp(theta[1]), floor_max * jax.nn.sigmoid(theta[2])])


def _residuals(theta, data):
    runs, floor_max = data
    u, v, floor = _natural(theta, floor_max)
    out = []
    for lr, steps, log_y in runs:
        pred = floor + convex_bound_at(lr, steps, u, v)
        out.append(jnp.log(pred) - log_y)
    return jnp.concatenate(out)


@with_float64
def fit_convex_bound(
    runs: Sequence,
    *,
    max_steps: int = 200,
    allow_rising: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ConvexBound:
    """Fit ``u, v`` and the floor to pilot runs (:class:`optsched.loss_models.fitted.PilotRun`,
    step 0 skipped), by least squares on log losses. ``progress`` (if given) is called with a
    line of text after the starts and after each polishing round."""
    arrays, unit, y_min, y_max = pilot_arrays(
        runs, normalise=True, skip_first_step=True, allow_rising=allow_rising
    )
    span = y_max - y_min + 1e-12
    starts = [[math.log(span), math.log(span * c), 0.0] for c in (0.01, 0.1, 1.0)]
    theta, cost, J = least_squares_fit(
        _residuals, starts, (arrays, y_min), max_steps=max_steps, progress=progress
    )
    cov = covariance(J, cost, lambda t: _natural(t, y_min), theta)
    u, v, floor = (float(x) for x in _natural(theta, y_min))
    return ConvexBound(
        u,
        v,
        floor,
        unit,
        standard_errors(cov, ("u", "v", "loss_floor")),
        covariance=cov,
        pilot_peaks=pilot_peaks(runs),
    )


@with_float64
def _final_bound(lr, v):
    return convex_bound_at(lr, jnp.array([lr.shape[0]]), 1.0, v)[0]


@with_float64
def best_peak_bound(shape, v) -> float:
    r"""The bound (``u = 1``) of :math:`c\,\eta` at its best scale :math:`c > 0`: how good a
    schedule's *shape* is under per-step squared gradient norms ``v`` (bounded scalar search over
    :math:`\log c \in [-15, 15]`, to 1e-10)."""
    import scipy.optimize as so

    shape = np.asarray(shape, dtype=np.float64)
    res = so.minimize_scalar(
        lambda c: float(_final_bound(jnp.asarray(math.exp(c) * shape), v)),
        bounds=(-15, 15),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(res.fun)


@with_float64
def direct_minimum(v, start) -> float:
    r"""The bound (``u = 1``) minimised over every rate :math:`\eta_t \ge 0` by SciPy's
    L-BFGS-B from ``start`` (its exact gradient by ``jax.grad``): the reference the refined
    schedule (:func:`refine_from_grad_norms`) is measured against; O(T) per evaluation."""
    import scipy.optimize as so

    value_and_grad = jax.jit(jax.value_and_grad(lambda e: _final_bound(e, v)))

    def f(e):
        value, grad = value_and_grad(jnp.asarray(e))
        return float(value), np.asarray(grad)

    res = so.minimize(
        f,
        np.asarray(start, dtype=np.float64),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, None)] * len(start),
        options={"maxiter": 20_000, "ftol": 1e-15, "gtol": 1e-12},
    )
    return float(res.fun)


def refine_from_grad_norms(
    grad_norms, peak_lr: float, *, window: int | None = None, knots: int = 2048
) -> Schedule:
    r"""The refined schedule of Defazio et al. (2023) from a previous run's gradient norms.

    The norms :math:`g_t` (one per step, ``t = 0 .. T-1``) are median-smoothed over ``window``
    steps (default ``max(1, T // 100)``), then :math:`\eta_t \propto g_t^{-2} \sum_{p > t}
    g_p^{-2}` (the minimiser of the bound; see the module docstring for the derivation),
    scaled so that its maximum is ``peak_lr``; the last rate is 0. Returned on at most ``knots``
    knots with linear interpolation.
    """
    g = np.asarray(grad_norms, dtype=float)
    if g.ndim != 1 or g.size < 2 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError("grad_norms must be a 1-d sequence of >= 2 finite positive norms")
    if not peak_lr > 0:
        raise ValueError(f"peak_lr must be positive, got {peak_lr}")
    T = g.size
    window = max(1, T // 100) if window is None else int(window)
    half = window // 2
    padded = np.pad(g, (half, window - 1 - half), mode="edge")
    smooth = np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)
    inv = smooth**-2.0  # the weights w_t = g_t^-2
    tail = np.concatenate([np.cumsum(inv[::-1])[::-1][1:], [0.0]])  # sum_{p > t} g_p^-2
    w = inv * tail
    return Schedule.from_function(lambda t: peak_lr * w[t] / w.max(), T, knots=knots)
