"""What every fitter shares: Levenberg-Marquardt from several starts, the reading of pilot runs,
and Gauss-Newton standard errors."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

__all__ = ["covariance", "least_squares_fit", "pilot_arrays", "standard_errors"]


def least_squares_fit(residuals: Callable, starts: Sequence, data, *, max_steps: int = 200):
    """Levenberg-Marquardt (optimistix) from each start; the lowest sum of squares wins.

    Returns ``(theta, cost, jacobian)`` at the best optimum, or raises if every start diverged.
    """
    solver = optx.LevenbergMarquardt(rtol=1e-10, atol=1e-10)
    best = None
    for theta0 in starts:
        sol = optx.least_squares(
            residuals,
            solver,
            jnp.asarray(theta0, dtype=float),
            args=data,
            max_steps=max_steps,
            throw=False,
        )
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
    ``skip_first_step``; losses logged before the run's warm-up ends dropped), the peak rate,
    and the lowest and highest fitted loss.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("fit needs at least one pilot run")
    peak = max(float(np.max(np.asarray(r.schedule.lr))) for r in runs)
    if peak <= 0:
        raise ValueError("every pilot run has a zero learning rate: nothing to fit")
    arrays, kept = [], []
    for r in runs:
        keep = r.steps >= r.warmup
        if skip_first_step:
            keep &= r.steps > 0
        if np.sum(keep) < 1:
            raise ValueError(f"run {r.name!r} has no loss after its warm-up")
        lr = r.schedule.per_step(1.0)[0] / (peak if normalise else 1.0)
        arrays.append((lr, jnp.asarray(r.steps[keep]), jnp.asarray(np.log(r.loss[keep]))))
        kept.append(r.loss[keep])
    y_min = min(float(np.min(y)) for y in kept)
    y_max = max(float(np.max(y)) for y in kept)
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
