"""optsched: optimal training schedules from a solvable model of SGD.

Importing optsched turns on JAX's float64 mode (``jax_enable_x64``): the loss dynamics span many
decades (eigenvalues ``k**-b`` down to 1e-12 and below, horizons of 1e6 steps) and float32 would
be silently inaccurate. Arrays you create after the import default to float64 too.

The public names, in the order data flows through them::

    PowerLawProblem -> mode_grid / spectrum -> Schedule -> loss_curve / dynamics -> simulate
                                                      -> solve -> Solution -> save / load
                                                                         -> to_optax / transfer
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from .dynamics.base import AbstractDynamics, Trajectory  # noqa: E402
from .dynamics.momentum import MomentumRecursion  # noqa: E402
from .dynamics.ode import ContinuousTime  # noqa: E402
from .dynamics.sgd import (  # noqa: E402
    BlockPropagation,
    StepRecursion,
    max_stable_lr,
    propagate_blocks,
    stability_margin,
)
from .evaluate import DivergenceError, loss_curve, make_spectrum  # noqa: E402
from .export import (  # noqa: E402
    batch_size_schedule,
    batches,
    to_csv,
    to_optax,
    to_optax_momentum,
    to_optax_source,
)
from .io import ScheduleFileError, load  # noqa: E402
from .loss_models.base import AbstractLossModel, ModelSolution, solve_model  # noqa: E402
from .loss_models.convex import ConvexBound, fit_convex_bound, refine_from_grad_norms  # noqa: E402
from .loss_models.fitted import FittedProblem, PilotRun, fit  # noqa: E402
from .loss_models.multipower import MultiPowerLaw, fit_multi_power_law  # noqa: E402
from .model import theory  # noqa: E402
from .model.problem import PowerLawProblem  # noqa: E402
from .model.spectrum import ModeGrid, Spectrum, mode_grid, spectrum  # noqa: E402
from .schedule import Schedule, expand  # noqa: E402
from .simulate import SimulationResult, simulate  # noqa: E402
from .solver.baselines import BaselineResult, family, tune_baselines  # noqa: E402
from .solver.solve import Solution, solve, solve_many  # noqa: E402
from .transfer import transfer  # noqa: E402
from .wallclock import BudgetSweep, budget_sweep  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AbstractDynamics",
    "BaselineResult",
    "ScheduleFileError",
    "Solution",
    "family",
    "load",
    "solve",
    "solve_many",
    "fit",
    "PilotRun",
    "FittedProblem",
    "AbstractLossModel",
    "ModelSolution",
    "solve_model",
    "MultiPowerLaw",
    "fit_multi_power_law",
    "ConvexBound",
    "fit_convex_bound",
    "refine_from_grad_norms",
    "theory",
    "tune_baselines",
    "batch_size_schedule",
    "batches",
    "to_csv",
    "to_optax",
    "to_optax_momentum",
    "to_optax_source",
    "transfer",
    "BudgetSweep",
    "budget_sweep",
    "BlockPropagation",
    "ContinuousTime",
    "DivergenceError",
    "ModeGrid",
    "MomentumRecursion",
    "PowerLawProblem",
    "Schedule",
    "SimulationResult",
    "Spectrum",
    "StepRecursion",
    "Trajectory",
    "expand",
    "loss_curve",
    "make_spectrum",
    "max_stable_lr",
    "mode_grid",
    "propagate_blocks",
    "simulate",
    "spectrum",
    "stability_margin",
]
