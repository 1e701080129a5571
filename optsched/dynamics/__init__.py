"""Loss dynamics: one module per kind of state, one interface (:class:`AbstractDynamics`)."""

from typing import TYPE_CHECKING

from .base import AbstractDynamics, Trajectory
from .momentum import MomentumRecursion
from .sgd import BlockPropagation, StepRecursion

if TYPE_CHECKING:
    from .ode import ContinuousTime

__all__ = [
    "AbstractDynamics",
    "BlockPropagation",
    "ContinuousTime",
    "MomentumRecursion",
    "StepRecursion",
    "Trajectory",
]


def __getattr__(name):  # the ODE (and diffrax) load only when asked for
    if name == "ContinuousTime":
        from .ode import ContinuousTime

        return ContinuousTime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
