"""Loss dynamics: one module per kind of state, one interface (:class:`AbstractDynamics`)."""

from .base import AbstractDynamics, Trajectory
from .momentum import MomentumRecursion
from .ode import ContinuousTime
from .sgd import BlockPropagation, StepRecursion

__all__ = [
    "AbstractDynamics",
    "BlockPropagation",
    "ContinuousTime",
    "MomentumRecursion",
    "StepRecursion",
    "Trajectory",
]
