r"""The wall-clock variant of the batch-size problem: fewest SGD steps to a target loss.

At a fixed sample budget :math:`D = \sum_t m_t`, fewer steps mean larger batches. For each horizon
``T`` on a grid, :func:`~optsched.solver.solve` with :class:`~optsched.LearningRateBatch` (budget
``D``) gives the optimal final loss with
a batch ramp, :math:`L^*_{ramp}(T)`, and (in its stats) with the constant batch ``D/T``,
:math:`L^*_{const}(T)` (:func:`budget_sweep`). The fewest steps reaching a target loss are where
each curve crosses the target, interpolated linearly in ``log T`` and ``log L``
(:meth:`BudgetSweep.steps_to`). Theory (docs/model.md) predicts the optimal
ramp :math:`m^*(t) \propto (1 - t/T)^{1/(2b) - 1}` and a saving of steps in the easy phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ._precision import with_float64
from .model.problem import PowerLawProblem
from .model.theory import fit_exponent
from .solver.parameterisation import LearningRateBatch
from .solver.solution import Solution
from .solver.solve import solve

__all__ = ["BudgetSweep", "budget_sweep", "ramp_exponent"]


def _crossing(horizons, losses, target) -> float:
    """The horizon where ``losses`` first falls to ``target`` (log-log interpolation; ``nan`` if
    it never does on the grid, or already does at the first horizon)."""
    below = np.nonzero(losses <= target)[0]
    if below.size == 0 or below[0] == 0:
        return float(horizons[0]) if below.size and losses[0] == target else math.nan
    i = int(below[0])
    x0, x1 = np.log(horizons[i - 1]), np.log(horizons[i])
    y0, y1 = np.log(losses[i - 1]), np.log(losses[i])
    return float(np.exp(x0 + (np.log(target) - y0) * (x1 - x0) / (y1 - y0)))


@dataclass(frozen=True)
class BudgetSweep:
    """Optimal final losses at one sample budget over a grid of horizons.

    Attributes:
        budget: the sample budget ``D``.
        horizons: the horizons ``T`` solved, increasing.
        loss_ramp: optimal final loss with the batch schedule, per horizon.
        loss_constant: optimal final loss with the constant batch ``D / T``, per horizon.
        solutions: the solutions behind ``loss_ramp``.
    """

    budget: float
    horizons: np.ndarray
    loss_ramp: np.ndarray
    loss_constant: np.ndarray
    solutions: tuple

    def steps_to(self, target: float) -> tuple[float, float]:
        """Fewest steps reaching ``target``: ``(with the ramp, with the constant batch)``,
        interpolated in log-log (``nan`` when the grid does not bracket the target)."""
        if not (math.isfinite(target) and target > 0):
            raise ValueError(f"target must be a positive loss, got {target}")
        return (
            _crossing(self.horizons, self.loss_ramp, target),
            _crossing(self.horizons, self.loss_constant, target),
        )

    def saved(self, target: float) -> float:
        """Fraction of steps the ramp saves to reach ``target``: ``1 - T_ramp / T_constant``."""
        ramp, const = self.steps_to(target)
        return 1.0 - ramp / const


@with_float64
def budget_sweep(
    problem: PowerLawProblem,
    budget: float,
    horizons: Sequence[int],
    lr_max: float | None = None,
    *,
    batch_range: tuple[float, float] | None = None,
    progress: Callable[[str], None] | None = None,
    **solve_kwargs,
) -> BudgetSweep:
    """Solve the batch-budget problem (and, inside it, the constant batch) at each horizon.

    Args:
        problem: the model (its batch size is replaced by the budget's mean batch ``D / T``).
        budget: the sample budget ``D``.
        horizons: the horizons to solve; each must allow a mean batch ``D / T`` inside
            ``batch_range`` (default ``(1, 16 D / T)``; fix it to compare horizons fairly).
        lr_max, batch_range: the controls' bounds (:class:`~optsched.LearningRateBatch`).
        solve_kwargs: passed to :func:`~optsched.solve` (``optimiser=...``).
        progress: called with a line per horizon.
    """
    steps = np.asarray(sorted(int(t) for t in horizons))
    if steps.size < 2:
        raise ValueError("need at least two horizons to interpolate the fewest steps")
    say = progress or (lambda msg: None)
    ramp, const, sols = [], [], []
    for T in steps:
        lo, hi = (1.0, None) if batch_range is None else batch_range
        controls = LearningRateBatch(
            lr_max=lr_max, budget=float(budget), batch_min=lo, batch_max=hi
        )
        sol: Solution = solve(problem, int(T), controls, **solve_kwargs)
        ramp.append(sol.final_loss)
        const.append(sol.stats["lr_only_final_loss"])
        sols.append(sol)
        say(f"T={T}: ramp {sol.final_loss:.6g}, constant batch {const[-1]:.6g}")
    return BudgetSweep(float(budget), steps, np.array(ramp), np.array(const), tuple(sols))


def ramp_exponent(solution, window=(0.5, 0.95)) -> float:
    r"""Exponent ``p`` of a batch ramp :math:`m^*(t) \sim (1 - t/T)^p`, fitted over ``t/T`` in
    ``window`` (theory: :math:`1/(2b) - 1`, :attr:`optsched.model.theory.Exponents.batch_ramp`)."""
    T = solution.horizon
    u = np.arange(T) / T
    _, _, m = solution.schedule.per_step(solution.problem.batch)
    keep = (u >= window[0]) & (u <= window[1])
    return fit_exponent(1.0 - u[keep], np.asarray(m)[keep])
