"""What every fitter shares: Levenberg-Marquardt from several starts, the reading of pilot runs,
and Gauss-Newton standard errors."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._threads import map_on_cores

__all__ = [
    "covariance",
    "group_labels",
    "least_squares_fit",
    "levenberg_marquardt",
    "loss_spikes",
    "LossSpikeWarning",
    "pad_to_bucket",
    "pilot_arrays",
    "pilot_floor",
    "pilot_peaks",
    "standard_errors",
]


SCOUT_STEPS = 25
"""Levenberg-Marquardt steps every start gets before the best one alone is polished."""

POLISH_CHUNK = 100
"""Steps per polishing round; polishing stops when a round lowers the cost by less than
``chi2_tol`` in units of the residual variance."""


@functools.cache
def dense_jacobian(residuals: Callable) -> Callable:
    """``residuals(theta, data)`` whose derivative in ``theta`` is its Jacobian, materialised
    by forward mode in the same pass as the residuals.

    Levenberg-Marquardt linearises the residuals at every step; left to itself, JAX keeps the
    linearised program, then replays it once per parameter (to build the matrix) and in
    reverse (for the gradient that judges the step), each a pass through the whole dynamics.
    With the Jacobian in hand (``p`` tangents carried alongside one forward pass) the rest is
    small matrix algebra: a step costs one forward pass. Cached per function, so the solver's
    compiled program is reused across calls.
    """

    @jax.custom_jvp
    def fn(theta, data):
        return residuals(theta, data)

    @fn.defjvp
    def _jvp(primals, tangents):
        theta, data = primals
        jac, r = jax.jacfwd(lambda t: (residuals(t, data),) * 2, has_aux=True)(theta)
        return r, jac @ tangents[0]

    return fn


@eqx.filter_jit
def _sum_squares(residuals: Callable, theta, data):
    return jnp.sum(residuals(theta, data) ** 2)


@eqx.filter_jit
def _jacobian(residuals: Callable, theta, data):
    return jax.jacfwd(residuals)(theta, data)


SOLVERS = {"levenberg_marquardt": "LevenbergMarquardt", "dogleg": "Dogleg"}
"""The least-squares solvers a fit can polish with (:func:`least_squares_fit`): name ->
``optimistix`` class."""


def _solve_steps(
    residuals: Callable,
    theta,
    data,
    steps: int,
    solver: str = "levenberg_marquardt",
    stall: float = 0.0,
):
    """``steps`` steps of ``solver`` from ``theta``: ``(theta, cost, converged)``. With
    ``stall > 0`` it also stops once the sum of squares fell by less than ``stall`` times its
    value over the last :data:`STALL_WINDOW` steps (then counted as converged)."""
    import optimistix as optx  # fits only: predictions from a saved model do not load it

    from ._stall import StopWhenStalled

    method = getattr(optx, SOLVERS[solver])(rtol=1e-10, atol=1e-10)
    if stall > 0:
        method = StopWhenStalled(solver=method, tol=jnp.asarray(stall), window=STALL_WINDOW)
    sol = optx.least_squares(
        dense_jacobian(residuals),
        method,
        jnp.asarray(theta, dtype=float),
        args=data,
        max_steps=steps,
        throw=False,
    )
    cost = float(_sum_squares(residuals, sol.value, data))
    done = int(sol.stats["num_steps"]) < steps  # converged before the step limit
    return sol.value, cost, done


STALL_WINDOW = 25
"""Polishing stops when the sum of squares fell by less than ``chi2_tol`` residual variances
over this many steps (:func:`least_squares_fit`)."""


def levenberg_marquardt(residuals: Callable, starts: Sequence, data, steps: int) -> list:
    """``steps`` Levenberg-Marquardt steps from every start; ``(theta, cost, converged)`` each.

    A Levenberg-Marquardt loop is sequential (each step needs the last), so one fit keeps one
    core busy; the starts are independent and run side by side
    (:func:`~optsched._threads.map_on_cores`). The results are those of running them one after
    another; a start that diverged has a non-finite cost.
    """
    return map_on_cores(lambda theta0: _solve_steps(residuals, theta0, data, steps), starts)


def least_squares_fit(
    residuals: Callable,
    starts: Sequence,
    data,
    *,
    max_steps: int = 200,
    scout_steps: int = SCOUT_STEPS,
    chi2_tol: float = 1e-2,
    polish: str = "levenberg_marquardt",
    stop_on_stall: bool = False,
    progress: Callable[[str], None] | None = None,
):
    r"""Least squares (optimistix) from several starts; the lowest sum of squares wins.

    Every start runs ``scout_steps`` Levenberg-Marquardt steps (side by side:
    :func:`levenberg_marquardt`); the best is then polished by ``polish``
    (``"levenberg_marquardt"`` or ``"dogleg"``, a trust-region dogleg: ``optimistix.Dogleg``)
    in rounds of :data:`POLISH_CHUNK` steps (or ``max_steps``, if fewer)
    until it converges, ``max_steps`` steps in all are spent (rounded up to whole rounds: one
    compiled solver serves them), or a round lowers the cost by less than ``chi2_tol``
    residual variances (:math:`n\,\Delta\mathrm{cost} / \mathrm{cost}`: the parameters then
    move by about :math:`\sqrt{\Delta\chi^2} = 0.1` standard errors or less). With
    ``stop_on_stall`` the same test also runs within a round, over the last
    :data:`STALL_WINDOW` steps (:class:`~optsched.loss_models._stall.StopWhenStalled`). Fits
    whose data leave a direction nearly flat (an exponent drifting towards 0 with its amplitude
    growing) would otherwise spend every step crawling along it for digits nobody reads; but
    where predictions far from the pilots move along that direction (the multi-power law on the
    210M runs: 0.0008 nats of mean error for a sum of squares 1.4e-5 higher), only converging
    makes the fit reproducible, so each fitter chooses.

    Scouts are Levenberg-Marquardt: from far starts it finds the better minima (dogleg scouts
    ended in worse ones on the 210M and OpenWebText2 runs). Near the optimum of the power-law
    model's fits the dogleg converges in far fewer steps (the 25M multi-power-law pilots: 69
    steps to a sum of squares Levenberg-Marquardt does not reach in 200), but on the multi-power
    law's it stops at slightly higher sums of squares: each fitter chooses. A dogleg round that
    does not lower the cost (or diverges) is run again by Levenberg-Marquardt.

    ``progress`` (if given) is called with a line of text after the scouts and after every
    polishing round.

    Returns ``(theta, cost, jacobian)`` at the best optimum, or raises if every start diverged.
    """
    if polish not in SOLVERS:
        raise ValueError(f"polish must be one of {', '.join(SOLVERS)}, got {polish!r}")
    say = progress or (lambda message: None)
    n = jax.eval_shape(residuals, jnp.asarray(starts[0], dtype=float), data).shape[0]
    p = int(np.size(starts[0]))
    if n <= p:
        raise ValueError(
            f"the pilot runs give {n} losses after warm-up to fit {p} parameters; at least "
            f"{p + 1} are needed (log the loss more often, or add runs)"
        )
    scout = min(scout_steps, max_steps) if len(starts) > 1 else 0
    if scout:  # every start, side by side on the cores
        scouted = levenberg_marquardt(residuals, starts, data, scout)
    else:  # polished below from where it starts
        theta = jnp.asarray(starts[0], dtype=float)
        scouted = [(theta, float(_sum_squares(residuals, theta, data)), False)]
    best = None
    for theta, cost, done in scouted:
        if math.isfinite(cost) and (best is None or cost < best[1]):
            best = (theta, cost, done)
    if best is None:
        raise ValueError("the fit diverged from every starting point; check the runs' units")
    theta, cost, done = best
    if scout:
        say(f"{len(starts)} starts, {scout} steps each: best sum of squares {cost:.6g}")
    spent, chunk = scout, min(POLISH_CHUNK, max_steps)
    # a round also ends when STALL_WINDOW steps gain less than chi2_tol residual variances
    stall = chi2_tol / n if stop_on_stall else 0.0
    while not done and spent < max_steps:
        # whole rounds only: one compiled solver serves every round and every fit
        new, new_cost, done = _solve_steps(residuals, theta, data, chunk, polish, stall)
        if polish != "levenberg_marquardt" and not (math.isfinite(new_cost) and new_cost <= cost):
            new, new_cost, done = _solve_steps(residuals, theta, data, chunk, stall=stall)
        spent += chunk
        if not (math.isfinite(new_cost) and new_cost <= cost):
            break
        gain = cost - new_cost
        theta, cost = new, new_cost
        say(f"polishing: {spent} steps, sum of squares {cost:.6g}")
        if gain * n <= chi2_tol * cost:
            break
    return theta, cost, _jacobian(residuals, theta, data)


SPIKE_WINDOW = 3
"""Neighbours on each side that :func:`loss_spikes` compares a logged loss with."""

SPIKE_THRESHOLD = (0.02, 10.0)
"""A logged loss is a spike when its log departs from its neighbourhood's median by more than
the larger of ``0.02`` (2%) and ``10`` robust standard deviations of such departures in its
run. Measured on the shipped real runs (validation losses of 25M-400M and 210M models,
training losses of 124M-210M models): departures reach 0.0011 on validation losses and 5.8
robust standard deviations (0.17) on the noisy training losses, so none is flagged."""


class LossSpikeWarning(UserWarning):
    """Logged losses left out of a fit as spikes (:func:`loss_spikes`)."""


def loss_spikes(log_loss) -> np.ndarray:
    r"""Which logged losses of one run are spikes: isolated excursions that no schedule explains.

    Each point's departure :math:`d_i = \log y_i - \operatorname{median}(\log y_{i-h..i+h})`
    from the median of a centred window (:math:`h` = :data:`SPIKE_WINDOW`, shrunk near the ends
    so that the window stays centred: on a monotone stretch :math:`d_i = 0` however fast the
    loss falls). A point is a spike when :math:`|d_i|` exceeds :data:`SPIKE_THRESHOLD`: 2%, or
    10 robust standard deviations :math:`1.4826\,\operatorname{median}|d - \operatorname{
    median}\,d|` of its run's departures if larger (noisy training losses). The last point,
    whose window cannot be centred, is compared with the median of the last :math:`2h + 1`
    points and flagged only upwards (a run may end in a fast cooldown). Excursions longer than
    :math:`h` points are structure, not spikes, and are kept; the first point is always kept.

    Returns a boolean mask, ``True`` at spikes.
    """
    y = np.asarray(log_loss, dtype=float)
    n = y.size
    d = np.zeros(n)
    for i in range(1, n - 1):
        h = min(SPIKE_WINDOW, i, n - 1 - i)
        d[i] = y[i] - np.median(y[i - h : i + h + 1])
    if n >= 3:
        d[-1] = max(0.0, y[-1] - float(np.median(y[-(2 * SPIKE_WINDOW + 1) :])))
    floor, k = SPIKE_THRESHOLD
    scale = 1.4826 * float(np.median(np.abs(d - np.median(d)))) if n else 0.0
    return np.abs(d) > max(floor, k * scale)


def pilot_arrays(runs, *, normalise: bool, skip_first_step: bool, allow_rising: bool = False):
    """What every fitter reads from pilot runs (:class:`optsched.loss_models.fitted.PilotRun`).

    Returns ``(arrays, peak, y_min, y_max)``: per run ``(lr_t, steps, log loss)`` (rates
    divided by the runs' ``peak`` rate if ``normalise``; step 0 dropped if
    ``skip_first_step``; losses logged before the run's warm-up ends dropped, and spikes,
    :func:`loss_spikes`, with a :class:`LossSpikeWarning` naming them), the peak rate, and the
    lowest and highest fitted loss.

    A run whose loss rises (the median of its last tenth of fitted losses more than 5% above
    that of its first tenth: a diverged or mislabelled run) is refused unless
    ``allow_rising``.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("fit needs at least one pilot run")
    peaks = [float(np.max(np.asarray(r.schedule.lr))) for r in runs]
    for r, p in zip(runs, peaks, strict=True):
        if p <= 0:
            raise ValueError(
                f"run {r.name!r} has a zero learning rate throughout: it cannot inform a fit"
            )
    peak = max(peaks)
    arrays, kept = [], []
    for r in runs:
        keep = r.steps >= r.warmup
        if skip_first_step:
            keep &= r.steps > 0
        if np.sum(keep) < 1:
            raise ValueError(f"run {r.name!r} has no loss after its warm-up")
        spikes = np.zeros_like(keep)
        spikes[keep] = loss_spikes(np.log(r.loss[keep]))
        if np.any(spikes):
            listed = ", ".join(
                f"step {s} ({y:.4g})" for s, y in zip(r.steps[spikes], r.loss[spikes], strict=True)
            )
            warnings.warn(
                LossSpikeWarning(
                    f"run {r.name!r}: {int(np.sum(spikes))} logged loss(es) left out of the fit "
                    f"as spikes (more than 2% off their neighbours' median): {listed}"
                ),
                stacklevel=3,
            )
            keep &= ~spikes
        y = r.loss[keep]
        tenth = max(1, y.size // 10)
        first, last = float(np.median(y[:tenth])), float(np.median(y[-tenth:]))
        if not allow_rising and y.size >= 3 and last > 1.05 * first:
            raise ValueError(
                f"run {r.name!r}: the loss is increasing (from {first:.4g} to {last:.4g}); a "
                "diverged run? fit it anyway with allow_rising (--allow-rising)"
            )
        lr = r.schedule.per_step(1.0)[0] / (peak if normalise else 1.0)
        arrays.append((lr, jnp.asarray(r.steps[keep]), jnp.asarray(np.log(r.loss[keep]))))
        kept.append(r.loss[keep])
    y_min = min(float(np.min(y)) for y in kept)
    y_max = max(float(np.max(y)) for y in kept)
    return arrays, peak, y_min, y_max


def group_labels(k, ends, *, ratio: float, sign=None, cum_weight=None, max_weight=None):
    r"""Labels that merge the terms ``k`` (sorted step indices) of a sum evaluated at the steps
    ``ends`` (a term ``k`` counts at every end ``> k``) into groups no end falls inside.

    Between consecutive ends, terms are banded by their distance ``d`` to the next end
    (:math:`\lfloor \log d / \log(1 + \mathrm{ratio}) \rfloor`: widths 1, 1, 2, 3, 4, 6, ... back
    from it), so a group spans at most ``ratio`` of its distance to every end it counts at; a
    group also never mixes signs (``sign``) nor, given ``cum_weight`` (the running total of the
    terms' absolute weights), holds more than ``max_weight`` of it. Returns ``(label, count)``.
    A curve of ``n`` ends over ``T`` steps then has ``O(n log T)`` groups instead of ``T``.
    """
    ends = np.unique(np.asarray(ends, dtype=np.int64))
    seg = np.searchsorted(ends, k, side="right")  # terms with k < ends[seg]
    end = np.where(seg < ends.size, ends[np.minimum(seg, ends.size - 1)], np.max(k) + 2)
    band = np.floor(np.log(np.maximum(end - k, 1)) / np.log1p(ratio)).astype(np.int64)
    columns = [seg, -band]
    if sign is not None:
        columns.append(np.sign(sign).astype(np.int64))
    if cum_weight is not None and max_weight is not None:
        columns.append(np.floor(cum_weight / max_weight).astype(np.int64))
    _, label = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
    label = label.reshape(-1)
    return label, int(label.max()) + 1 if label.size else 0


def pad_to_bucket(x: np.ndarray, fill, minimum: int = 16) -> np.ndarray:
    """``x`` padded with ``fill`` to the next power of two (at least ``minimum``): inputs of
    many sizes share a few compiled programs."""
    n = max(minimum, 1 << max(int(x.size) - 1, 0).bit_length())
    return np.concatenate([x, np.full(n - x.size, fill, dtype=x.dtype)])


def pilot_peaks(runs) -> tuple[float, float]:
    """The lowest and highest peak learning rate of the pilot runs (real units): the range in
    which a fitted model has seen how the loss depends on the peak."""
    peaks = [float(np.max(np.asarray(r.schedule.lr))) for r in runs]
    return min(peaks), max(peaks)


def pilot_floor(runs) -> float:
    """The lowest learning rate any pilot run used after its peak (real units): below it, a
    model fitted to them has not seen how the loss responds to the rate."""
    floors = []
    for r in runs:
        lr = np.asarray(r.schedule.per_step(1.0)[0], dtype=np.float64)
        floors.append(float(np.min(lr[int(np.argmax(lr)) :])))
    return min(floors)


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
