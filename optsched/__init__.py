"""optsched: optimal training schedules from a solvable model of SGD.

Data flows one way::

    loss model (PowerLawProblem | FittedProblem | MultiPowerLaw | ConvexBound)
        -> solve(model, horizon, controls)  ->  Solution (schedule, baselines, result, stats)
        -> to_optax / save / export

The power-law random-feature model lives in :mod:`optsched.model`, its loss dynamics in
:mod:`optsched.dynamics`, the solver in :mod:`optsched.solver`, the loss models of real runs and
their fits in :mod:`optsched.loss_models`, files in :mod:`optsched.io` and the hand-over to
training loops in :mod:`optsched.export`.

Importing optsched changes no JAX setting. Its own computations run in float64 inside a scoped
context (:func:`float64`); the optax schedules it exports compute in the caller's precision.
"""

from importlib.metadata import PackageNotFoundError as _NotFound
from importlib.metadata import version as _version
from typing import TYPE_CHECKING

from . import distributed
from ._precision import float64
from .dynamics.base import AbstractDynamics, Trajectory, UnsupportedScheduleError
from .dynamics.momentum import MomentumRecursion
from .dynamics.sgd import BlockPropagation, StepRecursion, max_stable_lr
from .evaluate import DivergenceError, loss_curve, make_spectrum
from .export import batch_size_schedule, batches, to_csv, to_optax, to_optax_momentum
from .io import ScheduleFileError, load
from .loss_models.base import AbstractLossModel
from .loss_models.convex import ConvexBound, fit_convex_bound, refine_from_grad_norms
from .loss_models.fitted import FittedProblem, PilotRun, fit
from .loss_models.multipower import MultiPowerLaw, fit_multi_power_law
from .model import theory
from .model.problem import PowerLawProblem
from .model.spectrum import ModeGrid, Spectrum, mode_grid, spectrum
from .schedule import Schedule
from .simulate import SimulationResult, simulate
from .solver.baselines import BaselineResult, family
from .solver.parameterisation import LearningRate, LearningRateBatch, LearningRateMomentum
from .solver.solution import RESULTS, Solution, SolveError
from .solver.solve import LBFGS, solve, solve_many
from .transfer import transfer
from .wallclock import BudgetSweep, budget_sweep
from .warmup import (
    Smoothness,
    estimate_loss_star,
    fit_smoothness,
    scale_by_adaptive_warmup,
    smoothness_from_pilot,
)

if TYPE_CHECKING:
    from .dynamics.ode import ContinuousTime

try:
    __version__ = _version("optsched")
except _NotFound:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    # the model and its loss
    "PowerLawProblem",
    "Schedule",
    "family",
    "loss_curve",
    "simulate",
    "theory",
    "ModeGrid",
    "Spectrum",
    "mode_grid",
    "spectrum",
    "make_spectrum",
    "max_stable_lr",
    "Trajectory",
    "SimulationResult",
    "DivergenceError",
    # dynamics
    "AbstractDynamics",
    "StepRecursion",
    "BlockPropagation",
    "MomentumRecursion",
    "ContinuousTime",
    "UnsupportedScheduleError",
    # solving, for every loss model
    "solve",
    "solve_many",
    "Solution",
    "RESULTS",
    "SolveError",
    "LBFGS",
    "LearningRate",
    "LearningRateMomentum",
    "LearningRateBatch",
    "BaselineResult",
    "transfer",
    "BudgetSweep",
    "budget_sweep",
    "distributed",
    # loss models of real runs and their fits
    "AbstractLossModel",
    "FittedProblem",
    "PilotRun",
    "fit",
    "MultiPowerLaw",
    "fit_multi_power_law",
    "ConvexBound",
    "fit_convex_bound",
    "refine_from_grad_norms",
    # loss-driven adaptive warm-up (norm-constrained optimisers)
    "Smoothness",
    "estimate_loss_star",
    "fit_smoothness",
    "scale_by_adaptive_warmup",
    "smoothness_from_pilot",
    # files and export
    "load",
    "ScheduleFileError",
    "to_optax",
    "to_optax_momentum",
    "batch_size_schedule",
    "batches",
    "to_csv",
    # precision
    "float64",
]


def __getattr__(name):  # diffrax loads only for the ODE dynamics
    if name == "ContinuousTime":
        from .dynamics.ode import ContinuousTime

        return ContinuousTime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
