"""``loss_curve``: the expected loss of a schedule on a problem, with the checks users need.

This is the edge of the dynamics: it picks a dynamics, builds the modes, runs, and turns a
divergent run into a :class:`DivergenceError` that names the step and learning rate, instead of
returning ``inf``/``NaN``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ._precision import with_float64
from .dynamics.base import Trajectory, blown_up
from .dynamics.choice import Method, dynamics_for
from .dynamics.sgd import max_stable_lr
from .model.problem import PowerLawProblem
from .model.spectrum import ModeGrid, Spectrum, mode_grid, spectrum
from .schedule import Schedule

__all__ = ["DivergenceError", "loss_curve", "make_spectrum"]


class DivergenceError(ValueError):
    """The schedule makes SGD diverge on this problem."""


@with_float64
def make_spectrum(
    problem: PowerLawProblem,
    schedule: Schedule | None = None,
    *,
    grid: ModeGrid | None = None,
    max_time: float | None = None,
    **grid_kwargs,
) -> Spectrum:
    """Modes for ``problem`` accurate up to the schedule's intrinsic time (or ``max_time``)."""
    if grid is None:
        if max_time is None:
            max_time = 1e7 if schedule is None else max(schedule.intrinsic_time(), 1.0)
        grid = mode_grid(problem.features, b=float(problem.b), max_time=max_time, **grid_kwargs)
    return spectrum(problem, grid)


@with_float64
def loss_curve(
    problem: PowerLawProblem,
    schedule: Schedule,
    *,
    method: Method = "auto",
    grid: ModeGrid | None = None,
    check: bool = True,
    **grid_kwargs,
) -> Trajectory:
    """Expected excess loss of SGD on ``problem`` following ``schedule``.

    Args:
        problem: the model.
        schedule: learning rate (and optional momentum, in its ``momentum_form``, and batch
            sizes) on knots; a schedule in real units is converted at its ``lr_scale``.
        method: ``"scan"`` (exact per-step recursion), ``"blocks"`` (closed-form, horizon-free,
            piecewise-constant schedules only), ``"ode"`` (continuous-time limit) or ``"auto"``
            (see :mod:`optsched.dynamics.choice`).
        grid: the modes to track (default: exact for small ``N``, quadrature otherwise).
        check: raise :class:`DivergenceError` if the run diverges.

    Returns:
        A :class:`~optsched.dynamics.base.Trajectory` (loss after ``t`` updates at its steps).
    """
    if schedule.units == "real":
        schedule = schedule.to_units("model")
    dynamics = dynamics_for(schedule, method)
    spec = make_spectrum(problem, schedule, grid=grid, **grid_kwargs)
    if math.isfinite(spec.max_time) and schedule.intrinsic_time() > spec.max_time * (1 + 1e-9):
        raise ValueError(
            f"the schedule's intrinsic time sum(lr) = {schedule.intrinsic_time():.4g} exceeds the "
            f"grid's max_time = {spec.max_time:.4g}; build the grid with a larger max_time"
        )
    traj = dynamics.loss_curve(spec, schedule, problem.batch)
    if check and bool(traj.diverged):
        raise DivergenceError(_divergence_message(problem, schedule, spec, traj))
    return traj


def _divergence_message(problem, schedule, spec, traj) -> str:
    loss = np.asarray(traj.loss)
    bad = np.asarray(blown_up(loss, loss[0], spec.noise))
    if not bad.any():
        return "the ODE solver failed (too many steps or a non-finite state)"
    i = int(np.argmax(bad))
    step = int(traj.steps[max(i - 1, 0)])
    lr = float(schedule.lr_at(jnp.asarray(step)))
    limit = float(max_stable_lr(spec, problem.batch))
    return (
        f"SGD diverges: the loss blows up by step {int(traj.steps[i])} (lr = {lr:.4g} there); "
        f"the largest stable constant lr at batch {float(problem.batch):g} is {limit:.4g}"
    )
