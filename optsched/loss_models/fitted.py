r"""Fit the power-law random-feature model to observed loss curves (pilot runs).

A real training run has a learning-rate schedule :math:`\eta_t` in its own units and a measured
loss :math:`y_t`. The model maps them through three scales,

.. math::
    \eta^{model}_t = s_\eta\,\eta_t, \qquad
    \hat y_t = L_\infty + s_L\,L^{model}_t(a, b, \sigma;\ \eta^{model}),

where :math:`L^{model}_t` is the exact per-step recursion at infinite width (batch ``m`` fixed by
the user, default 1), :math:`s_\eta` the learning-rate scale, :math:`s_L` the loss scale and
:math:`L_\infty` the irreducible loss. :func:`fit` estimates
:math:`(a, b, \sigma, s_\eta, s_L, L_\infty)` by least squares on :math:`\log y_t` (Levenberg-
Marquardt through the dynamics, ``optimistix``), from a few starting points, and reports standard
errors from the Gauss-Newton covariance :math:`\hat s^2 (J^\top J)^{-1}` mapped to the natural
parameters by the delta method. :meth:`FittedProblem.predict` then gives the loss curve of any
schedule, and :meth:`FittedProblem.solve` the optimal schedule in the run's own units.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._precision import with_float64
from ..dynamics.choice import fit_grid
from ..dynamics.sgd import sgd_step, step_losses
from ..model.problem import PowerLawProblem
from ..model.spectrum import grid_nodes, spectrum
from ..schedule import Schedule
from .base import AbstractLossModel
from .fitting import (
    covariance,
    dense_jacobian,
    least_squares_fit,
    levenberg_marquardt,
    pilot_arrays,
    pilot_peaks,
    standard_errors,
)

__all__ = ["PilotRun", "FittedProblem", "fit"]

PARAMETERS = ("a", "b", "sigma", "lr_scale", "loss_scale", "loss_floor")

SCOUT_STEPS = 25
"""Levenberg-Marquardt steps of each scouting round of :func:`fit` (before the grid is
rebuilt around the best start)."""


@dataclasses.dataclass(frozen=True)
class PilotRun:
    """One observed run: its schedule (real units) and the loss measured at some steps.

    Attributes:
        schedule: the learning rate the run used, over its horizon ``T``.
        steps: steps at which the loss was measured (after ``steps`` updates; ``0 .. T``).
        loss: the measured loss at those steps (positive; e.g. a validation loss).
        name: what to call the run (its file name, for runs read by :mod:`optsched.runs`).
        warmup: the step at which the warm-up ends; fits skip the losses logged before it.
    """

    schedule: Schedule
    steps: np.ndarray
    loss: np.ndarray
    name: str = "run"
    warmup: int = 0

    def __post_init__(self):
        steps = np.asarray(self.steps, dtype=np.int64)
        loss = np.asarray(self.loss, dtype=float)
        if steps.shape != loss.shape or steps.ndim != 1 or steps.size < 2:
            raise ValueError("a pilot run needs steps and losses of equal length (>= 2 points)")
        if np.any(steps < 0) or np.any(steps > self.schedule.horizon):
            raise ValueError(f"steps must lie in 0 .. T = {self.schedule.horizon}")
        if not np.all(np.isfinite(loss)) or np.any(loss <= 0):
            raise ValueError("losses must be finite and positive")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "loss", loss)


class FittedProblem(AbstractLossModel):
    r"""The model fitted to pilot runs, in the runs' own units.

    Attributes:
        problem: the model problem (infinite width) with the fitted ``a, b, sigma``.
        lr_scale: :math:`s_\eta`, model learning rate per real learning rate.
        loss_scale: :math:`s_L`, real loss per model excess loss.
        loss_floor: :math:`L_\infty`, the irreducible real loss.
        stderr: standard error of each of :data:`PARAMETERS`.
        covariance: their covariance, shape ``(6, 6)``, in the order of :data:`PARAMETERS`.
        residual_rms: root-mean-square residual of :math:`\log y` at the optimum.
        max_time: the model intrinsic time :meth:`curve` keeps accurate (static; ten times the
            pilot runs' by default). :meth:`predict` is accurate at any length.
    """

    problem: PowerLawProblem
    lr_scale: float
    loss_scale: float
    loss_floor: float
    stderr: dict
    covariance: np.ndarray
    residual_rms: float
    max_time: float = eqx.field(static=True, default=1e4)
    pilot_peaks: tuple[float, float] | None = eqx.field(static=True, default=None)

    @with_float64
    def curve(self, lr):
        """Real loss after ``0 .. T`` steps of real per-step rates ``lr`` (jit-able)."""
        spec = spectrum(self.problem, fit_grid(float(self.problem.b), self.max_time))
        lr = self.lr_scale * jnp.asarray(lr)
        model = step_losses(spec, lr, jnp.full_like(lr, self.problem.batch))
        return self.loss_floor + self.loss_scale * model

    def values(self) -> dict[str, float]:
        """The fitted values of :data:`PARAMETERS`."""
        return {
            "a": float(self.problem.a),
            "b": float(self.problem.b),
            "sigma": float(self.problem.sigma),
            "lr_scale": self.lr_scale,
            "loss_scale": self.loss_scale,
            "loss_floor": self.loss_floor,
        }

    @with_float64
    def predict(self, schedule: Schedule, steps=None) -> np.ndarray:
        """Predicted real loss of ``schedule`` at ``steps`` (default ``0 .. T``); modes accurate
        at any length. A schedule in model units is converted at this fit's ``lr_scale``."""
        from .base import _in_units_of

        schedule = _in_units_of(self, schedule)
        steps = np.arange(schedule.horizon + 1) if steps is None else np.asarray(steps)
        lr, _, m = schedule.per_step(self.problem.batch)
        return np.asarray(self._losses(self.parameters()[0], lr, steps, m))

    def objective(self, horizon: int, lr_max: float, *, max_blocks: int = 128):
        """The power-law objective on this fit's modes, in real units
        (:class:`~optsched.loss_models.power_law.PowerLawObjective` with the fitted scales)."""
        objective = self.problem.objective(
            horizon, self.lr_scale * float(lr_max), max_blocks=max_blocks
        )
        return dataclasses.replace(
            objective,
            lr_scale=self.lr_scale,
            loss_scale=self.loss_scale,
            loss_floor=self.loss_floor,
        )

    def parameters(self):
        return np.array(list(self.values().values())), np.asarray(self.covariance)

    def curve_at_parameters(self, values, lr, steps):
        return self._losses(values, lr, steps, None)

    def _losses(self, values, lr, steps, batches):
        """The loss at ``steps`` for parameters ``values``, real rates ``lr`` and per-step batch
        sizes ``batches`` (``None``: the model's), on modes laid out at the fitted ``b`` and
        these rates, as in the fit itself."""
        lr = np.asarray(lr, dtype=np.float64)
        nodes = _fit_nodes(float(self.problem.b), self.lr_scale * float(np.sum(lr)))
        batch = float(self.problem.batch)
        batches = np.full(lr.shape, batch) if batches is None else np.asarray(batches, float)
        return _losses_at(values, lr, batches, steps, nodes, batch)

    def default_lr_max(self) -> float:
        """99% of the fitted model's largest stable constant rate, in real units."""
        return self.problem.default_lr_max() / self.lr_scale

    def max_stable_peak(self, shape: Schedule | None = None) -> tuple[float, float]:
        r"""The largest peak learning rate that does not diverge, in real units, and its
        standard error.

        Without ``shape``, the largest stable *constant* rate: :math:`\eta_{max} =
        \eta^{model}_{max}(b, m) / s` with ``s`` the fitted ``lr_scale``; its error is the delta
        method on the fit's covariance, with the derivative in ``b`` by central differences
        (``a`` and ``sigma`` do not move the edge).

        With ``shape`` (a schedule; only its shape counts, its rates are divided by their
        maximum), the largest peak :math:`p` at which the fitted loss curve of
        :math:`p\,\eta_t / \max \eta` never rises above its value at step 0 (bisection to
        1e-4 relative). A peak held for many steps diverges at the constant edge; one held
        briefly (a cosine's) can pass it by a little. The error is the constant edge's, scaled
        by the ratio (the fitted scales move both alike).

        A peak above it makes the fitted model diverge; how close a real run can go is what the
        pilots' rates tell (a peak far above them is an extrapolation)."""
        value = self.problem.max_stable_lr() / self.lr_scale

        def edge(b: float) -> float:
            p = self.problem
            return PowerLawProblem.from_dict({**p.to_dict(), "b": b}).max_stable_lr()

        b = float(self.problem.b)
        h = 1e-4 * b
        grad = np.zeros(6)
        grad[1] = (edge(b + h) - edge(b - h)) / (2 * h) / self.lr_scale
        grad[3] = -value / self.lr_scale
        stderr = math.sqrt(max(float(grad @ np.asarray(self.covariance) @ grad), 0.0))
        if shape is None:
            return float(value), stderr
        lr = np.asarray(shape.per_step(self.problem.batch)[0], dtype=np.float64)
        if not (lr.size and np.all(np.isfinite(lr)) and lr.max() > 0):
            raise ValueError("the shape needs finite rates with a positive maximum")
        lr = jnp.asarray(lr / lr.max())

        def diverges(peak: float) -> bool:
            curve = np.asarray(self.curve(peak * lr))
            return not (np.all(np.isfinite(curve)) and curve[1:].max() <= curve[0])

        lo, hi = 0.5 * value, 2.0 * value
        while diverges(lo) and lo > 1e-6 * value:
            lo *= 0.5
        while not diverges(hi) and hi < 1e6 * value:
            hi *= 2.0
        while hi - lo > 1e-4 * lo:
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if diverges(mid) else (mid, hi)
        return float(lo), stderr * lo / value

    @property
    def phase(self) -> str:
        return self.problem.phase

    def describe(self) -> dict:
        return {
            "kind": "FittedProblem",
            "values": self.values(),
            "stderr": self.stderr,
            "batch": float(self.problem.batch),
            "residual_rms": self.residual_rms,
        }


NODE_BUCKET = 16
"""Fits pad their mode grids to a multiple of this many nodes, so that the grid rebuilt around
the scouts' estimate (a few nodes more or fewer) reuses the scouts' compiled solver."""


def _fit_nodes(b: float, max_time: float):
    """:func:`~optsched.dynamics.choice.fit_grid` as padded, traced nodes."""
    grid = fit_grid(b, max_time)
    return grid_nodes(grid, -(-grid.size // NODE_BUCKET) * NODE_BUCKET)


def _natural(theta, floor_max):
    """Unconstrained parameters -> (a, b, sigma, lr_scale, loss_scale, loss_floor)."""
    return jnp.stack(
        [
            1.0 + jnp.exp(theta[0]),
            1.0 + jnp.exp(theta[1]),
            jnp.exp(theta[2]),
            jnp.exp(theta[3]),
            jnp.exp(theta[4]),
            floor_max * jax.nn.sigmoid(theta[5]),
        ]
    )


def _model_losses(dynamic, data):
    """The model's excess losses at the logged steps of every run, concatenated, as a function of
    the four parameters the dynamics depend on (``theta[:4]``: ``a, b, sigma, lr_scale``)."""
    lr, runs, grid, batch, floor_max = data
    a, b, sigma, s_lr = _natural(jnp.concatenate([dynamic, jnp.zeros(2)]), floor_max)[:4]
    # the runs side by side (padded with zero rates, steps that change nothing): one pass
    model = jax.vmap(lambda r: _step_losses(a, b, sigma, s_lr * r, grid, batch))(lr)
    return jnp.concatenate([model[i, steps] for i, (steps, _) in enumerate(runs)])


def _step_losses(a, b, sigma, model_lr, grid, batch):
    """The model's loss ``L_0 .. L_T`` (before the loss scale and floor) for per-step model
    rates, on the modes ``grid`` (:class:`~optsched.model.spectrum.GridNodes`): what the fit and
    the fitted model's predictions share."""
    spec = spectrum(PowerLawProblem(a, b, sigma=sigma, batch=batch), grid)
    return step_losses(spec, model_lr, jnp.full_like(model_lr, batch))


# four tangents through the recursion, not six: the loss scale and floor enter after it
_model_losses_dense = dense_jacobian(_model_losses)


def _residuals(theta, data):
    _, runs, _, _, floor_max = data
    s_loss, floor = _natural(theta, floor_max)[4:]
    log_y = jnp.concatenate([log_y for _, log_y in runs])
    pred = floor + s_loss * _model_losses_dense(theta[:4], data)
    return jnp.log(jnp.maximum(pred, 1e-300)) - log_y


def _losses_at(values, lr, batches, steps, grid, batch: float):
    """The fitted loss at ``steps`` for parameters ``values = (a, b, sigma, lr_scale,
    loss_scale, loss_floor)``, per-step real rates ``lr`` and batch sizes ``batches``
    (concrete), on the modes ``grid``, differentiable in ``values`` (what a ranking's
    uncertainty needs).

    The recursion runs in calls of :data:`STEPS_PER_CALL` steps, the last padded with zero
    rates (steps that change nothing): every call is the same compiled program for runs of any
    length, and so is its derivative under ``jax.jacfwd``; what comes before and after is one
    compiled program each too (no operation runs, and compiles, on its own)."""
    lr = np.asarray(lr, dtype=np.float64)
    T = lr.shape[0]
    calls = -(-T // STEPS_PER_CALL)
    pad = calls * STEPS_PER_CALL - T
    lr = np.concatenate([lr, np.zeros(pad)]).reshape(calls, STEPS_PER_CALL)
    m = np.concatenate([batches, np.ones(pad)]).reshape(calls, STEPS_PER_CALL)
    spec, scale, initial = _fitted_spectrum(values, grid, batch)
    c, pieces = spec.target, [initial]
    for k in range(calls):
        c, losses = _advance(spec, c, scale, lr[k], m[k])
        pieces.append(losses)
    return _observed(values, pieces, np.asarray(steps))


STEPS_PER_CALL = 4096
"""Predictions run the recursion in calls of this many steps (:func:`_losses_at`)."""


@eqx.filter_jit
def _fitted_spectrum(values, grid, batch: float):
    """The spectrum of ``values``' ``(a, b, sigma)`` on ``grid``, the rate scale, and ``L_0``."""
    a, b, sigma = values[0], values[1], values[2]
    spec = spectrum(PowerLawProblem(a, b, sigma=sigma, batch=batch), grid)
    return spec, values[3], spec.initial_loss()[None]


@eqx.filter_jit
def _advance(spec, c, scale, lr, m):
    """``len(lr)`` steps of the exact recursion at the rates ``scale * lr`` from the errors
    ``c``: the new errors and the loss after each step."""

    def body(c, inp):
        c = sgd_step(spec, c, scale * inp[0], inp[1])
        return c, spec.loss(c)

    return jax.lax.scan(body, c, (lr, m))


@eqx.filter_jit
def _observed(values, pieces, steps):
    """The real loss at ``steps`` from the model's losses (``pieces``, concatenated)."""
    return values[5] + values[4] * jnp.concatenate(pieces)[steps]


@with_float64
def fit(
    runs: Sequence[PilotRun],
    *,
    batch: float = 1.0,
    starts: Sequence[tuple] | None = None,
    max_steps: int = 200,
    allow_rising: bool = False,
    progress: Callable[[str], None] | None = None,
) -> FittedProblem:
    r"""Fit ``(a, b, sigma, lr_scale, loss_scale, loss_floor)`` to pilot runs.

    Args:
        runs: one or more :class:`PilotRun` (two are better: e.g. a constant rate and a run with
            a cooldown, which separates the noise floor from the learning curve).
        batch: the model's batch size ``m`` (fixed; it trades off against ``sigma``).
        starts: initial ``(a, b)`` pairs (default: four pairs covering both phases). Each gets
            :data:`SCOUT_STEPS` Levenberg-Marquardt steps, the better half as many again, and so
            on until one is left; that one is polished.
        max_steps: the most Levenberg-Marquardt steps the polish spends (in whole rounds of
            :data:`~optsched.loss_models.fitting.POLISH_CHUNK`).
        allow_rising: fit runs whose loss rises (refused by default).
        progress: called with a line of text as the fit advances (each scouting round, each
            polishing round).

    Returns:
        A :class:`FittedProblem` with standard errors.
    """
    arrays, peak, y_min, y_0 = pilot_arrays(
        runs, normalise=False, skip_first_step=False, allow_rising=allow_rising
    )
    total_real = max(float(jnp.sum(lr)) for lr, _, _ in arrays)
    horizon = max(lr.shape[0] for lr, _, _ in arrays)
    lr_stack = jnp.stack([jnp.pad(lr, (0, horizon - lr.shape[0])) for lr, _, _ in arrays])
    observed = [(steps, log_y) for _, steps, log_y in arrays]

    def data_at(theta):
        nat = _natural(theta, y_min)
        nodes = _fit_nodes(float(nat[1]), float(nat[3]) * total_real)
        return (lr_stack, observed, nodes, float(batch), y_min)

    # short scouts from every start (on one grid, laid out for the lowest starting b, so one
    # compiled program serves them all) locate the estimate, the mode grid is rebuilt around
    # the best, and that one alone is polished to convergence
    thetas = []
    for a0, b0 in starts or [(1.5, 1.3), (2.5, 1.5), (1.5, 2.5), (3.0, 2.0)]:
        # the model is stable up to a rate of about 1 at m = 1: start well inside
        scale0 = 0.5 * (y_0 - y_min) / float(PowerLawProblem(a0, b0).initial_loss())
        thetas.append(
            jnp.array(
                [
                    math.log(a0 - 1),
                    math.log(b0 - 1),
                    math.log(0.1),
                    math.log(0.5 / peak),
                    math.log(scale0),
                    0.0,
                ]
            )
        )
    scout_data = data_at(min(thetas, key=lambda t: float(t[1])))
    # successive halving: every start gets SCOUT_STEPS, the better half as many again, ...
    # (a start's cost after a few steps ranks it only roughly: on the 210M pilots the start
    # that leads to the optimum is third of four after 25 steps, first after 40)
    # (the starts of a round run side by side, one per core)
    alive = thetas
    say = progress or (lambda message: None)
    scout_steps = min(SCOUT_STEPS, max_steps)
    while True:
        say(f"scouting {len(alive)} starts, {scout_steps} steps each")
        rounds = levenberg_marquardt(_residuals, alive, scout_data, scout_steps)
        scouted = [(cost, theta) for theta, cost, _ in rounds if math.isfinite(cost)]
        if not scouted:
            raise ValueError("the fit diverged from every starting point; check the runs' units")
        scouted.sort(key=lambda ct: ct[0])
        alive = [theta for _, theta in scouted[: max(1, len(scouted) // 2)]]
        if len(alive) == 1:
            break
    [best] = alive
    # polished by the dogleg: on these fits it reaches the same or a lower sum of squares than
    # Levenberg-Marquardt in fewer steps; stopped when 25 steps gain less than 0.01 residual
    # variances (the 210M pilots: 93 steps instead of 135, every benchmark prediction the
    # same to 1e-4 nats) (least_squares_fit)
    theta, cost, J = least_squares_fit(
        _residuals,
        [best],
        data_at(best),
        max_steps=max_steps,
        polish="dogleg",
        stop_on_stall=True,
        progress=progress,
    )
    cov = covariance(J, cost, lambda t: _natural(t, y_min), theta)
    a, b, sigma, s_lr, s_loss, floor = (float(v) for v in _natural(theta, y_min))
    return FittedProblem(
        PowerLawProblem(a, b, sigma=sigma, batch=batch),
        s_lr,
        s_loss,
        floor,
        standard_errors(cov, PARAMETERS),
        cov,
        math.sqrt(cost / J.shape[0]),
        max_time=10.0 * s_lr * total_real,
        pilot_peaks=pilot_peaks(runs),
    )
