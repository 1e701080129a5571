r"""The one place that decides which dynamics runs and which modes it tracks, and why.

Every caller (``loss_curve``, ``solve``, the fits, ``optsched evaluate``) asks here, so the
choices below are made once:

**Dynamics** (:func:`dynamics_for`). All three are exact for what they support:

* momentum needs the per-step moment recursion (:class:`MomentumRecursion`); nothing else
  evolves the velocity;
* a piecewise-constant (``"previous"``) SGD schedule runs in closed form per block
  (:class:`BlockPropagation`): cost independent of ``T``;
* anything else (``"linear"`` interpolation) runs the per-step recursion (:class:`StepRecursion`).
* ``method="blocks"`` with momentum runs the moments in closed form per block
  (:class:`MomentumBlocks`), reporting the loss at block boundaries.
* ``"ode"`` (:class:`ContinuousTime`) is only used when asked for: it is the small-learning-rate
  limit, not the recursion.

**Inside the solver** (:func:`sgd_method`) both SGD forms are exact, so the faster one is used:
the per-step scan, differentiated by the adjoint recursion
(:func:`~optsched.dynamics.adjoint.final_value`), costs about ``20 ns * T * n`` (loss and
gradient) and the block propagation about ``K * (100 us + 2 ns * n^3)`` (one eigendecomposition
per block), measured on 2 CPU cores (N = 28 .. 500, T = 1e3 .. 1e6): the scan wins for ``T`` up
to about ``10^4``. With momentum (:func:`momentum_method`) the adjoint scan costs about
``70 ns * T * n`` and the closed-form blocks about ``1.3e-10 * (3n + 1)^3`` per block and bit of
its length (``log2 L`` squarings), measured at n = 49 .. 61, T = 1e4 .. 1e6
(``benchmarks/bench_dynamics.py``): the blocks win from ``T`` of about ``2 * 10^5`` (120 knots).

**Modes** (:func:`modes_for`). A finite student of at most ``EXACT_MAX_MODES`` modes is
tracked exactly; a wider or infinite one by the log-``k`` quadrature of
:func:`~optsched.model.spectrum.mode_grid` (about 60 nodes), accurate up to the intrinsic time
:math:`F = \sum_t \eta_t` it is built for (modes slower than that are frozen into a constant).
``exact=True`` asks for every mode where it fits (:data:`EXACT_BUDGET` mode-steps), as the
independent check ``optsched evaluate`` does.
"""

from __future__ import annotations

import math
from typing import Literal

from .._precision import with_float64
from ..model.problem import PowerLawProblem
from ..model.spectrum import ModeGrid, Spectrum, mode_grid, spectrum
from ..schedule import Schedule
from .base import AbstractDynamics
from .momentum import MomentumBlocks, MomentumRecursion
from .sgd import BlockPropagation, StepRecursion

__all__ = [
    "EXACT_BUDGET",
    "Method",
    "dynamics_for",
    "fit_grid",
    "grid_for",
    "modes_for",
    "momentum_method",
    "sgd_method",
]

Method = Literal["auto", "scan", "blocks", "ode"]

EXACT_BUDGET = 2e9
"""Largest ``N * T`` (mode-steps) for which ``exact=True`` tracks every mode."""


def dynamics_for(schedule: Schedule, method: Method = "auto") -> AbstractDynamics:
    """The dynamics for ``schedule``: ``method`` names one, ``"auto"`` picks by the rules in the
    module docstring. A named method that cannot run the schedule is refused by its
    :meth:`~optsched.dynamics.base.AbstractDynamics.check`."""
    if method not in ("auto", "scan", "blocks", "ode"):
        raise ValueError(f"method must be 'auto', 'scan', 'blocks' or 'ode', got {method!r}")
    if method == "auto":
        if schedule.momentum is not None:
            return MomentumRecursion()
        method = "blocks" if schedule.interpolation == "previous" else "scan"
    if method == "scan" and schedule.momentum is not None:
        return MomentumRecursion()
    if method == "blocks" and schedule.momentum is not None:
        dynamics = MomentumBlocks()
        dynamics.check(schedule)
        return dynamics
    if method == "ode":  # diffrax is imported only by those who ask for the ODE
        from .ode import ContinuousTime

        dynamics = ContinuousTime()
    else:
        dynamics = {"scan": StepRecursion, "blocks": BlockPropagation}[method]()
    dynamics.check(schedule)
    return dynamics


def sgd_method(horizon: int, modes: int, blocks: int) -> Literal["scan", "blocks"]:
    """``"scan"`` or ``"blocks"``, whichever evaluates ``L_T`` and its gradient faster for
    ``blocks`` constant blocks over ``horizon`` steps and ``modes`` tracked modes."""
    scan = 20e-9 * horizon * modes
    block = blocks * (1e-4 + 2e-9 * modes**3)
    return "scan" if scan < block else "blocks"


def momentum_method(horizon: int, modes: int, blocks: int) -> Literal["scan", "blocks"]:
    """``"scan"`` or ``"blocks"`` for the momentum moments, whichever evaluates ``L_T`` and its
    gradient faster (the measured costs in the module docstring)."""
    scan = 7e-8 * horizon * modes
    bits = max(1.0, math.log2(max(horizon / max(blocks, 1), 1.0)) + 1.0)
    block = blocks * bits * 1.3e-10 * (3 * modes + 1) ** 3
    return "scan" if scan < block else "blocks"


@with_float64
def modes_for(
    problem: PowerLawProblem,
    max_time: float,
    *,
    exact: bool = False,
    horizon: int | None = None,
    b: float | None = None,
) -> Spectrum:
    """The modes of ``problem`` accurate up to intrinsic time ``max_time``.

    Args:
        problem: the model.
        max_time: the largest :math:`\\sum_t \\eta_t` (model units) to be simulated.
        exact: track every mode when ``N * horizon <= EXACT_BUDGET`` (finite ``N`` only).
        horizon: the number of steps (for the ``exact`` budget).
        b: lay the quadrature out for this eigenvalue exponent instead of the problem's (a fit
            that may move ``b`` lower lays it out for a smaller one).
    """
    return spectrum(problem, grid_for(problem, max_time, exact=exact, horizon=horizon, b=b))


def grid_for(
    problem: PowerLawProblem,
    max_time: float,
    *,
    exact: bool = False,
    horizon: int | None = None,
    b: float | None = None,
) -> ModeGrid:
    """The :class:`~optsched.model.spectrum.ModeGrid` behind :func:`modes_for` (same
    arguments)."""
    features = problem.features
    if exact and math.isfinite(features) and features * (horizon or 1) <= EXACT_BUDGET:
        return mode_grid(features, b=float(problem.b), method="exact")
    return mode_grid(
        features, b=float(problem.b if b is None else b), max_time=max(float(max_time), 1.0)
    )


def fit_grid(b: float, max_time: float) -> ModeGrid:
    """The infinite-width modes a fit tracks while ``a, b, sigma`` move (a static grid: the
    fitted parameters are traced). It is laid out for ``0.8 b`` (at least 1.02), since the fit may
    move ``b`` lower, and accurate to ten times the runs' intrinsic time ``max_time`` (model
    units), so that predictions of longer runs stay inside it."""
    return mode_grid(math.inf, b=max(1.02, 0.8 * b), max_time=max(10.0 * max_time, 10.0))
