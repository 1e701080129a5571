r"""Move a solved schedule to another horizon: re-solve, or rescale by the theory rule.

In the easy phase the optimal schedule at horizon ``T`` is, asymptotically, one shape in ``t/T``
with a peak that scales as :math:`T^{-\xi}`, :math:`\xi = 1 - b/a`
(:math:`\eta^*_T(t) \simeq T^{-\xi} f(t/T)`). In the hard phase it sits at the cap
(:math:`\xi = 0`) and the anneal takes a *shrinking* fraction of ``T``, so stretching the shape is
only a first guess there. Because :func:`~optsched.solver.solve` costs the same at any ``T``,
re-solving
is the default; rescaling is the theory rule, for a quick look or to compare.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from ._precision import with_float64
from .evaluate import loss_curve
from .model.problem import PowerLawProblem
from .model.theory import exponents
from .schedule import Schedule
from .solver.parameterisation import LearningRate
from .solver.solution import RESULTS, Solution
from .solver.solve import solve

__all__ = ["transfer"]


@with_float64
def transfer(
    solution: Solution, new_horizon: int, *, method: Literal["auto", "resolve", "rescale"] = "auto"
) -> Solution:
    r"""The schedule for ``new_horizon`` steps, from a solution at another horizon.

    Args:
        solution: a solved :class:`~optsched.Solution` (horizon ``T``).
        new_horizon: the horizon ``T'`` to train for.
        method: ``"resolve"`` solves again at ``T'`` (same problem and cap); ``"rescale"`` stretches
            the knots in ``t/T`` and multiplies the learning rate by :math:`(T'/T)^{-\xi}`
            (clipped at the cap; :math:`\xi = 0` in the hard phase); ``"auto"`` re-solves.

    Returns:
        A :class:`~optsched.Solution` at ``T'``. ``stats["transfer"]`` says which method was
        used and the factor applied. A rescaled solution carries its exact predicted loss (block
        propagation) but no baselines.
    """
    new_horizon = int(new_horizon)
    if new_horizon < 1:
        raise ValueError(f"new_horizon must be >= 1, got {new_horizon}")
    if method not in ("auto", "resolve", "rescale"):
        raise ValueError(f"method must be 'auto', 'resolve' or 'rescale', got {method!r}")
    old = solution.horizon
    if not isinstance(solution.model, PowerLawProblem) and method == "rescale":
        raise ValueError("the theory rescaling needs the power-law problem; re-solve instead")
    if method in ("auto", "resolve"):
        new = solve(solution.model, new_horizon, LearningRate(lr_max=solution.lr_max))
        note = {"method": "resolved", "from_horizon": old}
        return _with_note(new, note)

    problem = solution.model
    assert isinstance(problem, PowerLawProblem)
    xi = exponents(float(problem.a), float(problem.b)).xi
    factor = (new_horizon / old) ** (-xi)
    sched = solution.schedule
    # the knots move with t/T; knots that land on one step (a shorter horizon) keep the last value
    scale = (new_horizon - 1) / max(old - 1, 1)
    moved = np.round(np.asarray(sched.steps) * scale).astype(np.int64)
    steps, last = np.unique(moved[::-1], return_index=True)
    lr = np.asarray(sched.lr)[::-1][last]
    lr = np.minimum(lr * factor, solution.lr_max)
    new_sched = Schedule(
        steps, lr, horizon=new_horizon, interpolation=sched.interpolation, units=sched.units
    )
    traj = loss_curve(problem, new_sched)
    note = {"method": "rescaled", "from_horizon": old, "xi": xi, "lr_factor": factor}
    return Solution(
        solution.model,
        new_sched,
        float(traj.loss[-1]),
        np.asarray(traj.steps),
        np.asarray(traj.loss),
        solution.lr_max,
        {},
        RESULTS.successful,
        {"transfer": note},
    )


def _with_note(solution: Solution, note: dict) -> Solution:
    return dataclasses.replace(solution, stats={**solution.stats, "transfer": note})
