r"""One interface for models of the loss of a learning-rate schedule, and what works on any of them.

A loss model predicts the loss after each step of a run from its per-step learning rates,
:math:`L = F(\eta_0, \dots, \eta_{T-1})`, in the run's own units. Implementations:

* :class:`optsched.loss_models.fitted.FittedProblem`: the power-law random-feature model fitted to pilot runs;
* :class:`optsched.loss_models.multipower.MultiPowerLaw`: the multi-power law of Luo et al. (2025);
* :class:`optsched.loss_models.convex.ConvexBound`: the last-iterate bound for convex Lipschitz problems
  (Defazio et al. 2023; Schaipp et al. 2025).

On any of them :func:`tune_model_baselines` tunes the standard families and
:func:`solve_model` finds the schedule minimising the predicted final loss (L-BFGS on
piecewise-constant knots, bounded by a sigmoid, from the best baseline); the result has a
``.schedule``, so :func:`optsched.to_optax` exports it. :func:`least_squares_fit` is the fitter
the models share: Levenberg-Marquardt on log losses from several starts.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float

from ..schedule import Schedule
from ..solver.baselines import _variants, family
from ..solver.lbfgs import minimise

__all__ = ["AbstractLossModel", "ModelSolution", "covariance", "least_squares_fit",
           "pilot_arrays", "solve_model", "standard_errors", "tune_model_baselines"]


class AbstractLossModel(eqx.Module):
    """A model of the loss of a learning-rate schedule, in the run's own units."""

    @abc.abstractmethod
    def curve(self, lr: Float[Array, " T"]) -> Float[Array, " T+1"]:
        """Loss after ``0 .. T`` steps of the per-step rates ``lr`` (jit-able in ``lr``)."""

    def predict(self, schedule: Schedule, steps=None) -> np.ndarray:
        """Predicted loss of ``schedule`` at ``steps`` (default ``0 .. T``)."""
        lr = schedule.per_step(1.0)[0]
        out = np.asarray(self.curve(lr))
        return out if steps is None else out[np.asarray(steps)]


class ModelSolution(eqx.Module):
    """The schedule minimising a loss model's predicted final loss, and the tuned baselines.

    Attributes:
        model: the loss model.
        schedule: the optimal schedule (``"previous"`` interpolation on knots).
        final_loss: its predicted final loss.
        baselines: ``{family: (peak_lr, final_loss, Schedule)}``, each at its tuned peak.
    """

    model: AbstractLossModel
    schedule: Schedule
    final_loss: float
    baselines: dict

    def margins(self) -> dict[str, float]:
        """Relative gain over each baseline: ``baseline_loss / final_loss - 1``."""
        return {k: v[1] / self.final_loss - 1.0 for k, v in self.baselines.items()}


def tune_model_baselines(model: AbstractLossModel, horizon: int, lr_max: float, *,
                         points: int = 24) -> dict[str, tuple[float, float, Schedule]]:
    """Tune each family of :data:`optsched.solver.baselines.FAMILIES` (and its variants) for the
    model's final loss: peaks on a log grid over ``(1e-3 lr_max, lr_max]``, then a finer grid
    around the best. Returns ``{family: (peak_lr, final_loss, schedule)}``."""
    t = np.arange(horizon)
    final = jax.jit(jax.vmap(lambda lr: model.curve(lr)[-1]))
    out = {}
    for name, kw in _variants(("constant", "power_law", "cosine", "linear", "wsd")):
        shape = np.asarray(family(name, 1.0, horizon, **kw).lr_at(t))
        lo, hi = math.log(lr_max) - math.log(1e3), math.log(lr_max)
        best = (lr_max, math.inf)
        for _ in range(2):
            peaks = np.exp(np.linspace(lo, hi, points))
            losses = np.asarray(final(jnp.asarray(peaks[:, None] * shape[None, :])))
            losses = np.where(np.isfinite(losses), losses, np.inf)
            i = int(np.argmin(losses))
            if losses[i] < best[1]:
                best = (float(peaks[i]), float(losses[i]))
            width = (hi - lo) / (points - 1)
            lo, hi = math.log(best[0]) - width, min(math.log(best[0]) + width, math.log(lr_max))
        if name not in out or best[1] < out[name][1]:
            out[name] = (best[0], best[1], family(name, best[0], horizon, **kw))
    return out


def solve_model(model: AbstractLossModel, horizon: int, lr_max: float, *, knots: int = 64,
                maxiter: int = 500) -> ModelSolution:
    r"""The schedule minimising ``model``'s final loss under :math:`0 \le \eta_t \le` ``lr_max``.

    Piecewise constant on about ``knots`` blocks dense at both ends of training
    (:func:`optsched.solver.solve.knot_steps`), :math:`\eta_k = \eta_{max}\sigma(\theta_k)`, L-BFGS on
    the predicted final loss from the best tuned baseline; never worse than that baseline.
    """
    from ..solver.solve import knot_steps

    horizon, lr_max = int(horizon), float(lr_max)
    if horizon < 1 or not lr_max > 0:
        raise ValueError(f"need horizon >= 1 and lr_max > 0, got {horizon} and {lr_max}")
    baselines = tune_model_baselines(model, horizon, lr_max)
    best = min(baselines.values(), key=lambda v: v[1])
    steps = knot_steps(horizon, knots)
    idx = jnp.asarray(np.searchsorted(steps, np.arange(horizon), side="right") - 1)
    start = np.clip(np.asarray(best[2].lr_at(steps)) / lr_max, 1e-6, 0.97)

    def f(theta):
        loss = model.curve(lr_max * jax.nn.sigmoid(theta)[idx])[-1]
        return jnp.where(jnp.isfinite(loss), loss, 1e30)

    theta0 = jnp.asarray(np.log(start) - np.log1p(-start))
    theta, _, _ = eqx.filter_jit(minimise)(f, theta0, maxiter, 1e-12, 0.0)
    lr = lr_max * np.asarray(jax.nn.sigmoid(theta))
    sched = Schedule(steps, lr, horizon=horizon, interpolation="previous")
    final = float(model.predict(sched)[-1])
    if not final < best[1]:  # never worse than the best baseline
        sched, final = best[2], float(model.predict(best[2])[-1])
    return ModelSolution(model, sched, final, baselines)


def least_squares_fit(residuals: Callable, starts: Sequence, data, *, max_steps: int = 200):
    """Levenberg-Marquardt (optimistix) from each start; the lowest sum of squares wins.

    Returns ``(theta, cost, jacobian)`` at the best optimum, or raises if every start diverged.
    """
    solver = optx.LevenbergMarquardt(rtol=1e-10, atol=1e-10)
    best = None
    for theta0 in starts:
        sol = optx.least_squares(residuals, solver, jnp.asarray(theta0, dtype=float), args=data,
                                 max_steps=max_steps, throw=False)
        cost = float(jnp.sum(residuals(sol.value, data) ** 2))
        if math.isfinite(cost) and (best is None or cost < best[1]):
            best = (sol.value, cost)
    if best is None:
        raise ValueError("the fit diverged from every starting point; check the runs' units")
    theta, cost = best
    return theta, cost, jax.jacfwd(residuals)(theta, data)


def pilot_arrays(runs, *, normalise: bool, skip_first_step: bool):
    """What every fitter reads from pilot runs (:class:`optsched.loss_models.fitted.PilotRun`).

    Returns ``(arrays, peak, y_min, y_max)``: per run ``(lr_t, steps, log loss)`` (rates
    divided by the runs' ``peak`` rate if ``normalise``; step 0 dropped if
    ``skip_first_step``), the peak rate, and the lowest and highest observed loss.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("fit needs at least one pilot run")
    peak = max(float(np.max(np.asarray(r.schedule.lr))) for r in runs)
    if peak <= 0:
        raise ValueError("every pilot run has a zero learning rate: nothing to fit")
    arrays = []
    for r in runs:
        keep = r.steps > 0 if skip_first_step else np.ones(r.steps.shape, dtype=bool)
        lr = r.schedule.per_step(1.0)[0] / (peak if normalise else 1.0)
        arrays.append((lr, jnp.asarray(r.steps[keep]), jnp.asarray(np.log(r.loss[keep]))))
    y_min = min(float(np.min(r.loss)) for r in runs)
    y_max = max(float(np.max(r.loss)) for r in runs)
    return arrays, peak, y_min, y_max


def standard_errors(cov, names) -> dict[str, float]:
    """``{name: sqrt(cov[i, i])}`` (negative rounding clipped to 0)."""
    return {k: float(np.sqrt(max(cov[i, i], 0.0))) for i, k in enumerate(names)}


def covariance(jacobian, cost: float, transform: Callable, theta) -> np.ndarray:
    r"""Gauss-Newton covariance :math:`\hat s^2 (J^\top J)^{-1}` of the unconstrained parameters,
    mapped through ``transform`` (to the natural ones) by the delta method."""
    J = np.asarray(jacobian)
    n, p = J.shape
    cov_theta = cost / max(n - p, 1) * np.linalg.pinv(J.T @ J)
    G = np.asarray(jax.jacfwd(transform)(theta))
    return G @ cov_theta @ G.T
