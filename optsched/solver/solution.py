"""What :func:`optsched.solve` returns: a :class:`Solution` with a result code
(:class:`RESULTS`)."""

from __future__ import annotations

import equinox as eqx
import numpy as np

from ..loss_models.base import AbstractLossModel
from ..schedule import Schedule
from .baselines import BaselineResult

__all__ = ["RESULTS", "Solution", "SolveError"]


class RESULTS(eqx.Enumeration):
    """How a solve ended. Each member carries the message :func:`optsched.solve` raises with
    ``throw=True`` (``throw=False`` returns it in :attr:`Solution.result` instead)."""

    successful = ""
    max_steps_reached = (
        "The optimiser stopped at its iteration limit on the finest knots while the optimum was "
        "still moving (its last 50-100 iterations lowered the loss by more than 0.1%); raise "
        "LBFGS(maxiter=...)."
    )
    nonfinite_loss = (
        "The predicted final loss of every candidate schedule is infinite or NaN: the "
        "learning-rate cap is above what the model can train at (it diverges), or the model's "
        "parameters are out of range."
    )


class SolveError(RuntimeError):
    """A solve that did not succeed, raised with ``throw=True``; ``.solution`` holds what was
    found."""

    def __init__(self, message: str, solution: Solution):
        super().__init__(message)
        self.solution = solution


class Solution(eqx.Module):
    """An optimal schedule and everything known about it (an immutable pytree).

    Attributes:
        model: the loss model solved (:class:`~optsched.PowerLawProblem` or any other).
        schedule: the optimal schedule (``"previous"`` interpolation on knots, in the model's
            units: model units for the power-law problem, the runs' own for fitted models).
        final_loss: predicted final loss of ``schedule``.
        loss_steps, loss: predicted loss at step 0, the knots and ``T``.
        lr_max: the learning-rate cap used (the schedule's units).
        baselines: tuned baselines ``{family: BaselineResult}`` (peak and parameters).
        result: a :class:`RESULTS` member (``RESULTS.successful`` unless ``throw=False`` kept a
            failure).
        stats: iterations, gradient norm, time, refinement history, and the method used.
    """

    model: AbstractLossModel
    schedule: Schedule
    final_loss: float
    loss_steps: np.ndarray
    loss: np.ndarray
    lr_max: float
    baselines: dict
    result: RESULTS
    stats: dict

    @property
    def problem(self) -> AbstractLossModel:
        """The model solved (the name reads better for the power-law problem)."""
        return self.model

    @property
    def phase(self) -> str | None:
        """The model's phase (``"easy"``, ``"hard"``, ``"boundary"``), or ``None``."""
        return self.model.phase

    @property
    def horizon(self) -> int:
        return self.schedule.horizon

    @property
    def succeeded(self) -> bool:
        return bool(self.result == RESULTS.successful)

    def margins(self) -> dict[str, float]:
        """Relative gain over each baseline: ``baseline_loss / final_loss - 1``."""
        return {k: v.final_loss / self.final_loss - 1.0 for k, v in self.baselines.items()}

    def best_baseline(self) -> BaselineResult:
        return min(self.baselines.values(), key=lambda r: r.final_loss)

    def save(self, path) -> None:
        """Write a schedule file (format ``optsched.schedule/2``, see :mod:`optsched.io`)."""
        from ..io import save

        save(self, path)
