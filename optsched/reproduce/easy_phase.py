r"""Easy phase (a > b): the optimal schedule collapses onto :math:`T^{-\xi}(1 - t/T)^\delta`.

Theory (docs/model.md): :math:`\eta^*_T(t) \simeq T^{-\xi} (1 - t/T)^{\delta}` with
:math:`\xi = 1 - b/a` and :math:`\delta = 2b - 1`; optimal final loss :math:`\sim T^{-(a-1)/a}`.
Measured on the docs/model.md easy problem at infinite width over several decades of ``T``.
"""

from __future__ import annotations

from ..model.theory import exponents, measure
from . import plotting
from ._common import EASY, EASY_LR_MAX, Check, Result, decades, interpolation_of, solutions

QUICK_HORIZONS = [100, 1000, 10_000]
FULL_HORIZONS = [100, 1000, 10_000, 100_000, 1_000_000]


def horizons(quick: bool) -> list[int]:
    return QUICK_HORIZONS if quick else FULL_HORIZONS


def run(quick: bool = False, progress=None) -> Result:
    """Solve the easy problem at every horizon; measure ``xi``, ``delta`` and the loss exponent.

    ``xi`` and the loss exponent are fitted over ``T >= 1000`` (at ``T = 100`` the warmup is a
    large part of training); ``delta`` on the largest ``T`` over ``t/T`` in ``[0.5, 0.95]``.
    Tolerances: ``xi`` 0.05, loss exponent 0.05 (quick: 0.08), ``delta`` 0.15 (quick: 0.3):
    the exponents are asymptotic and approach theory slowly (see the local slopes).

    The full run solves smooth schedules (controls linear between knots, step by step: about
    half an hour on 2 CPU cores, most of it at ``T = 10^6``), so the collapse figure shows the
    optimal shape, not the knots' staircase; the quick run (tests, notebooks) solves
    piecewise-constant ones, in closed form per block.
    """
    T = horizons(quick)
    interpolation = interpolation_of(quick)
    sols = solutions(EASY, T, EASY_LR_MAX, progress=progress, interpolation=interpolation)
    theory = exponents(float(EASY.a), float(EASY.b))
    fit = measure([s for s in sols if s.horizon >= 1000])
    where = decades([t for t in T if t >= 1000])
    checks = [
        Check("easy xi (peak-rate exponent)", theory.xi, fit["xi"], 0.05, where),
        Check(
            "easy delta (decay exponent)",
            theory.delta,
            fit["delta"],
            0.3 if quick else 0.15,
            f"T = {max(T):.0e}, t/T in [0.5, 0.95]".replace("e+0", "e"),
        ),
        Check(
            "easy loss exponent (optimal)",
            theory.loss_optimal,
            fit["loss_exponent"],
            0.08 if quick else 0.05,
            where,
        ),
    ]
    numbers = {
        "problem": EASY.to_dict(),
        "lr_max": EASY_LR_MAX,
        "horizons": T,
        "interpolation": interpolation,
        "final_loss": [s.final_loss for s in sols],
        "fit": fit,
        "theory": theory.to_dict(),
    }
    fig = plotting.plot_easy_collapse(sols, xi=theory.xi, delta=theory.delta)
    return Result("easy_phase", numbers, checks, {"easy_phase": fig})
