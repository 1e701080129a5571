"""optsched: optimal training schedules from a solvable model of SGD.

Data flows one way::

    loss model (PowerLawProblem | FittedProblem | MultiPowerLaw | ConvexBound)
        -> solve(model, horizon, controls)  ->  Solution (schedule, baselines, result, stats)
        -> to_optax / save / export

The power-law random-feature model lives in :mod:`optsched.model`, its loss dynamics in
:mod:`optsched.dynamics`, the solver in :mod:`optsched.solver`, the loss models of real runs and
their fits in :mod:`optsched.loss_models`, files in :mod:`optsched.io` and the hand-over to
training loops in :mod:`optsched.export`.

Importing optsched changes no JAX setting, and loads nothing until a name is used (``import
optsched`` does not import JAX). Its own computations run in float64 inside a scoped
context (:func:`float64`); the optax schedules it exports compute in the caller's precision.
"""

import importlib as _importlib
import sys as _sys
import types as _types
from importlib.metadata import PackageNotFoundError as _NotFound
from importlib.metadata import version as _version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import distributed
    from ._precision import float64
    from .dynamics.base import AbstractDynamics, Trajectory, UnsupportedScheduleError
    from .dynamics.momentum import MomentumRecursion
    from .dynamics.ode import ContinuousTime
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


_WHERE = {
    "distributed": ".distributed",
    "float64": "._precision",
    "AbstractDynamics": ".dynamics.base",
    "Trajectory": ".dynamics.base",
    "UnsupportedScheduleError": ".dynamics.base",
    "MomentumRecursion": ".dynamics.momentum",
    "BlockPropagation": ".dynamics.sgd",
    "StepRecursion": ".dynamics.sgd",
    "max_stable_lr": ".dynamics.sgd",
    "ContinuousTime": ".dynamics.ode",
    "DivergenceError": ".evaluate",
    "loss_curve": ".evaluate",
    "make_spectrum": ".evaluate",
    "batch_size_schedule": ".export",
    "batches": ".export",
    "to_csv": ".export",
    "to_optax": ".export",
    "to_optax_momentum": ".export",
    "ScheduleFileError": ".io",
    "load": ".io",
    "AbstractLossModel": ".loss_models.base",
    "ConvexBound": ".loss_models.convex",
    "fit_convex_bound": ".loss_models.convex",
    "refine_from_grad_norms": ".loss_models.convex",
    "FittedProblem": ".loss_models.fitted",
    "PilotRun": ".loss_models.fitted",
    "fit": ".loss_models.fitted",
    "MultiPowerLaw": ".loss_models.multipower",
    "fit_multi_power_law": ".loss_models.multipower",
    "theory": ".model.theory",
    "PowerLawProblem": ".model.problem",
    "ModeGrid": ".model.spectrum",
    "Spectrum": ".model.spectrum",
    "mode_grid": ".model.spectrum",
    "spectrum": ".model.spectrum",
    "Schedule": ".schedule",
    "SimulationResult": ".simulate",
    "simulate": ".simulate",
    "BaselineResult": ".solver.baselines",
    "family": ".solver.baselines",
    "LearningRate": ".solver.parameterisation",
    "LearningRateBatch": ".solver.parameterisation",
    "LearningRateMomentum": ".solver.parameterisation",
    "RESULTS": ".solver.solution",
    "Solution": ".solver.solution",
    "SolveError": ".solver.solution",
    "LBFGS": ".solver.solve",
    "solve": ".solver.solve",
    "solve_many": ".solver.solve",
    "transfer": ".transfer",
    "BudgetSweep": ".wallclock",
    "budget_sweep": ".wallclock",
    "Smoothness": ".warmup",
    "estimate_loss_star": ".warmup",
    "fit_smoothness": ".warmup",
    "scale_by_adaptive_warmup": ".warmup",
    "smoothness_from_pilot": ".warmup",
}
"""Each public name and the module that defines it: importing ``optsched`` loads none of them
(not even JAX); the first use of a name loads its module, so a command that only predicts
does not pay for the solver, the dynamics or diffrax."""


_MODULES = frozenset({"distributed", "theory"})
"""The public names that are modules themselves; every other name is an attribute of its module."""


def __getattr__(name):
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    if name in _MODULES:
        value = _importlib.import_module(module, __name__)
    else:
        value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


class _Package(_types.ModuleType):
    """Some public names are named like their modules (``optsched.simulate``,
    ``optsched.transfer``); the import of such a module, which sets the package attribute, must
    not hide the function: a submodule never takes the place of a public name that is not one."""

    def __setattr__(self, name, value):
        if isinstance(value, _types.ModuleType) and name in _WHERE and name not in _MODULES:
            return  # the public name loads on first use (``__getattr__``)
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
