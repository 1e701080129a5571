r"""Compute-optimal width and horizon under :math:`C = N\,T\,m`, optimal schedule vs constant rate.

At a fixed batch ``m``, a compute budget ``C`` buys width ``N`` and steps ``T = C / (N m)``. On a
grid with ``N`` and ``T`` both doubling, every diagonal has one ``C``: the frontier
:math:`L^*(C) = \min_N L^*_{N, C/(Nm)}` (refined by a parabola in :math:`\log N` through the
three grid points around the minimum) gives :math:`N^*(C)`, :math:`T^*(C)` and the loss
exponent. The loss includes the unlearnable tail :math:`\sum_{k > N} k^{-a}` (an infinitely wide
teacher). Theory (docs/model.md (compute-optimal section), inferred there and flagged "to check";
the easy phase here):
:math:`N^* \sim C^{1/(a+1)}`, :math:`T^* \sim C^{a/(a+1)}`, :math:`L^* \sim C^{-(a-1)/(a+1)}`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.problem import PowerLawProblem
from ..model.theory import compute_optimal_exponents, fit_exponent
from . import plotting
from ._common import EASY, EASY_LR_MAX, Check, Result, solutions

QUICK: dict[str, Any] = dict(widths=[8, 16, 32, 64, 128], horizons=[16, 32, 64, 128, 256, 512])
FULL: dict[str, Any] = dict(
    widths=[8, 16, 32, 64, 128, 256, 512, 1024],
    horizons=[16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
)


def frontier(widths, horizons, loss, batch: float):
    """The compute-optimal frontier of a loss table ``loss[i, j]`` (width ``i``, horizon ``j``),
    for grids where both double: ``[(C, N*, T*, L*)]`` for the budgets whose optimum is inside
    the grid (the parabola's vertex in :math:`\\log N` on the diagonal)."""
    out = []
    n_w, n_t = loss.shape
    for k in range(n_w + n_t - 1):
        cells = [(i, k - i) for i in range(n_w) if 0 <= k - i < n_t]
        if len(cells) < 3:
            continue
        values = np.array([loss[i, j] for i, j in cells])
        best = int(np.argmin(values))
        if best in (0, len(cells) - 1):
            continue  # the optimum is at the edge of the grid: the frontier is unknown there
        x = np.log2([widths[i] for i, _ in cells[best - 1 : best + 2]])
        y = np.log(values[best - 1 : best + 2])
        c2, c1, c0 = np.polyfit(x, y, 2)
        x_star = -c1 / (2 * c2)
        i, j = cells[0]
        C = widths[i] * horizons[j] * batch
        n_star = 2.0**x_star
        out.append(
            (C, n_star, C / (n_star * batch), float(np.exp(np.polyval([c2, c1, c0], x_star))))
        )
    return out


def run(quick: bool = False, progress=None) -> Result:
    """Solve every (N, T) of the grid; build the frontier for the optimal schedule and for the
    optimal constant rate; fit the exponents of :math:`N^*`, :math:`T^*` and :math:`L^*`.

    Checks: the optimal schedule's frontier exponents within 0.1 of theory (0.15 quick), and
    the optimal schedule's frontier below the constant rate's at every budget.
    """
    cfg = QUICK if quick else FULL
    widths, horizons = cfg["widths"], cfg["horizons"]
    problems = {
        N: PowerLawProblem(
            a=EASY.a,
            b=EASY.b,
            sigma=float(EASY.sigma),
            batch=float(EASY.batch),
            features=N,
            teacher_modes=math.inf,
        )
        for N in widths
    }
    pairs = [(problems[N], T) for N in widths for T in horizons]
    sols = solutions([p for p, _ in pairs], [T for _, T in pairs], EASY_LR_MAX, progress=progress)
    shape = (len(widths), len(horizons))
    optimal = np.array([s.final_loss for s in sols]).reshape(shape)
    constant = np.array([s.baselines["constant"].final_loss for s in sols]).reshape(shape)
    batch = float(EASY.batch)
    fronts = {
        "optimal": frontier(widths, horizons, optimal, batch),
        "constant": frontier(widths, horizons, constant, batch),
    }
    theory = compute_optimal_exponents(float(EASY.a), float(EASY.b))
    fitted = {}
    for name, front in fronts.items():
        C, n, t, loss = (np.array(col) for col in zip(*front, strict=True))
        fitted[name] = {
            "width": fit_exponent(C, n),
            "horizon": fit_exponent(C, t),
            "loss": -fit_exponent(C, loss),
        }
    C_opt = [f[0] for f in fronts["optimal"]]
    where = f"C = {min(C_opt):.0f} .. {max(C_opt):.0f} (N = {widths[0]} .. {widths[-1]})"
    tol = 0.15 if quick else 0.1
    checks = [
        Check(
            f"compute-optimal {q} exponent (optimal schedule)",
            theory[q],
            fitted["optimal"][q],
            tol,
            where,
        )
        for q in ("width", "horizon", "loss")
    ]
    common = sorted(set(C_opt) & {f[0] for f in fronts["constant"]})
    ratio = [
        dict((f[0], f[3]) for f in fronts["constant"])[c]
        / dict((f[0], f[3]) for f in fronts["optimal"])[c]
        for c in common
    ]
    checks.append(
        Check(
            "frontier loss, constant / optimal (smallest over C)",
            1.0,
            min(ratio) if ratio else float("nan"),
            0.0,
            where,
            relation="above",
        )
    )
    numbers = {
        "problem": {**EASY.to_dict(), "teacher_modes": "inf"},
        "widths": widths,
        "horizons": horizons,
        "loss_optimal": optimal.tolist(),
        "loss_constant": constant.tolist(),
        "frontier": {
            k: [dict(zip(("C", "N", "T", "L"), f, strict=True)) for f in v]
            for k, v in fronts.items()
        },
        "fitted": fitted,
        "theory": theory,
    }
    fig = plotting.plot_compute_optimal(widths, horizons, optimal, batch, fronts, theory)
    return Result("compute_optimal", numbers, checks, {"compute_optimal": fig})
