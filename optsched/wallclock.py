r"""The wall-clock variant of the batch-size problem: fewest SGD steps to a target loss.

At a fixed sample budget :math:`D = \sum_t m_t`, fewer steps mean larger batches. For each horizon
``T`` on a grid, :func:`~optsched.solve` with ``batch_budget=D`` gives the optimal final loss with
a batch ramp, :math:`L^*_{ramp}(T)`, and (in its diagnostics) with the constant batch ``D/T``,
:math:`L^*_{const}(T)`. The fewest steps reaching a target loss are where each curve crosses the
target (interpolated linearly in ``log T`` and ``log L``). Theory (MODEL.md) predicts the optimal
ramp :math:`m^*(t) \propto (1 - t/T)^{1/(2b) - 1}` and a saving of steps in the easy phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .problem import PowerLawProblem
from .solve import Solution, solve

__all__ = ["StepsToTarget", "steps_to_target"]


@dataclass(frozen=True)
class StepsToTarget:
    """Fewest steps to reach ``target`` at sample budget ``budget``.

    Attributes:
        horizons: the horizons ``T`` solved, increasing.
        loss_ramp: optimal final loss with the batch schedule, per horizon.
        loss_constant: optimal final loss with the constant batch ``D / T``, per horizon.
        steps_ramp, steps_constant: interpolated fewest steps reaching ``target`` (``nan`` when the
            target is not reached on the grid).
        saved: ``1 - steps_ramp / steps_constant``, the fraction of steps the ramp saves.
        solutions: the solutions behind ``loss_ramp``.
    """

    budget: float
    target: float
    horizons: np.ndarray
    loss_ramp: np.ndarray
    loss_constant: np.ndarray
    steps_ramp: float
    steps_constant: float
    saved: float
    solutions: tuple


def _crossing(horizons, losses, target) -> float:
    """The horizon where ``losses`` first falls to ``target`` (log-log interpolation)."""
    below = np.nonzero(losses <= target)[0]
    if below.size == 0:
        return math.nan
    i = int(below[0])
    if i == 0:
        return float(horizons[0]) if losses[0] == target else math.nan
    x0, x1 = np.log(horizons[i - 1]), np.log(horizons[i])
    y0, y1 = np.log(losses[i - 1]), np.log(losses[i])
    return float(np.exp(x0 + (np.log(target) - y0) * (x1 - x0) / (y1 - y0)))


def steps_to_target(
    problem: PowerLawProblem,
    budget: float,
    target: float,
    horizons: Sequence[int],
    lr_max: float | None = None,
    *,
    batch_range: tuple[float, float] | None = None,
    progress: Callable[[str], None] | None = None,
    **solve_kwargs,
) -> StepsToTarget:
    """Solve the batch-budget problem at each horizon and find the fewest steps to ``target``.

    Args:
        problem: the model (its batch size is replaced by the budget's).
        budget: the sample budget ``D``.
        target: the final excess loss to reach.
        horizons: increasing horizons to solve; each must allow a mean batch ``D / T`` inside
            ``batch_range`` (default ``(1, 16 D / T)``).
        lr_max, batch_range, solve_kwargs: passed to :func:`~optsched.solve`.
        progress: called with a line per horizon.
    """
    horizons = np.asarray(sorted(int(t) for t in horizons))
    if horizons.size < 2:
        raise ValueError("need at least two horizons to interpolate the fewest steps")
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target must be a positive loss, got {target}")
    say = progress or (lambda msg: None)
    ramp, const, sols = [], [], []
    for T in horizons:
        sol: Solution = solve(problem, int(T), lr_max, batch_budget=budget,
                              batch_range=batch_range, **solve_kwargs)
        ramp.append(sol.final_loss)
        const.append(sol.diagnostics["lr_only_final_loss"])
        sols.append(sol)
        say(f"T={T}: ramp {sol.final_loss:.6g}, constant batch {const[-1]:.6g}")
    ramp, const = np.array(ramp), np.array(const)
    t_ramp, t_const = _crossing(horizons, ramp, target), _crossing(horizons, const, target)
    return StepsToTarget(float(budget), float(target), horizons, ramp, const, t_ramp, t_const,
                         1.0 - t_ramp / t_const, tuple(sols))
