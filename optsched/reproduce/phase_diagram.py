r"""The (a, b) plane: phase, fitted exponents and the gain of the optimum, from batched solves.

Every cell is solved at two horizons ``T_1 < T_2`` with :func:`optsched.solve_many` (one
compiled program for the whole grid). Per cell: :math:`\xi` from how :math:`\eta^*` at
``t/T in {0.3, 0.5, 0.7}`` scales between the horizons (theory :math:`1 - b/a` easy, 0 hard);
:math:`\delta` fitted on ``T_2`` over ``t/T in [0.5, 0.95]`` (theory :math:`2b - 1`, easy
phase); the gain of the optimum over the best constant rate and the best cosine at ``T_2``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.problem import PowerLawProblem
from ..model.theory import exponents, measure
from . import plotting
from ._common import Check, Result, solutions

QUICK: dict[str, Any] = dict(size=3, horizons=(100, 1000))
FULL: dict[str, Any] = dict(size=10, horizons=(300, 3000))
SIGMA, BATCH = 0.3, 4


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``a`` and ``b`` values of a ``size x size`` grid covering both phases."""
    return np.linspace(1.3, 3.5, size), np.linspace(1.15, 3.0, size)


def run(quick: bool = False, progress=None) -> Result:
    """Solve the grid and measure every cell.

    Checks (cells away from the boundary, where the asymptotics are slowest: theory
    :math:`\\xi > 0.2` in the easy phase, ``b - a > 0.2`` in the hard phase): the phase read
    from the measured :math:`\\xi` (easy when > 0.05) agrees with theory in every cell; mean
    :math:`|\\xi - \\xi_{theory}|` below 0.06 (quick: 0.1); the optimum beats the best
    constant and the best cosine in every cell (smallest gain > 0).
    """
    cfg = QUICK if quick else FULL
    a_values, b_values = grid(cfg["size"])
    problems = [
        PowerLawProblem(a=float(a), b=float(b), sigma=SIGMA, batch=BATCH, features=math.inf)
        for b in b_values
        for a in a_values
    ]
    T1, T2 = cfg["horizons"]
    first = solutions(problems, T1, progress=progress)
    second = solutions(problems, T2, progress=progress)
    shape = (len(b_values), len(a_values))
    cells = {
        k: np.full(shape, np.nan)
        for k in (
            "xi",
            "xi_theory",
            "delta",
            "delta_theory",
            "gain_constant",
            "gain_cosine",
            "easy",
        )
    }
    for idx, (p, s1, s2) in enumerate(zip(problems, first, second, strict=True)):
        i, j = divmod(idx, shape[1])
        th = exponents(float(p.a), float(p.b))
        fit = measure([s1, s2])
        margins = s2.margins()
        cells["xi"][i, j] = fit["xi"]
        cells["xi_theory"][i, j] = th.xi
        cells["easy"][i, j] = float(th.phase == "easy")
        if th.phase == "easy":
            cells["delta"][i, j] = fit["delta"]
            cells["delta_theory"][i, j] = th.delta
        cells["gain_constant"][i, j] = margins["constant"]
        cells["gain_cosine"][i, j] = margins["cosine"]
    A, B = np.meshgrid(a_values, b_values)
    away = (cells["xi_theory"] > 0.2) | (B - A > 0.2)
    agree = ((cells["xi"] > 0.05) == (cells["easy"] > 0.5))[away]
    where = f"{shape[1]} x {shape[0]} grid, T = {T1} and {T2}"
    checks = [
        Check(
            "phase from measured xi agrees with theory (fraction of cells)",
            1.0,
            float(np.mean(agree)),
            0.0,
            where,
        ),
        Check(
            "mean |xi - theory| over the grid",
            0.0,
            float(np.mean(np.abs(cells["xi"] - cells["xi_theory"])[away])),
            0.1 if quick else 0.06,
            where,
        ),
        Check(
            "smallest gain over the best constant",
            0.0,
            float(np.min(cells["gain_constant"])),
            0.0,
            where,
            relation="above",
        ),
        Check(
            "smallest gain over the best cosine",
            0.0,
            float(np.min(cells["gain_cosine"])),
            0.0,
            where,
            relation="above",
        ),
    ]
    numbers = {
        "a": a_values.tolist(),
        "b": b_values.tolist(),
        "horizons": [T1, T2],
        "sigma": SIGMA,
        "batch": BATCH,
        **{
            k: [[None if np.isnan(x) else float(x) for x in row] for row in np.asarray(v)]
            for k, v in cells.items()
        },
    }
    fig = plotting.plot_phase_diagram(a_values, b_values, cells, horizons=(T1, T2))
    return Result("phase_diagram", numbers, checks, {"phase_diagram": fig})
