r"""Hard phase (a < b): warmup-stable-decay at the cap, with an anneal that shrinks with ``T``.

Theory (docs/model.md): the optimum sits at :math:`\eta_{max}` for most of training and anneals over
a fraction of ``T`` that vanishes as ``T`` grows; optimal final loss :math:`\sim T^{-(a-1)/b}`.
The law of the anneal fraction is not settled (docs/model.md measured :math:`\sim T^{-0.30}` for
``T`` from 64 to 2048 at ``N = 1500``): it is measured here over more decades.
"""

from __future__ import annotations

from ..model.theory import exponents, fit_exponent, measure
from . import plotting
from ._common import HARD, HARD_LR_MAX, Check, Result, decades, interpolation_of, solutions

QUICK_HORIZONS = [100, 1000, 10_000]
FULL_HORIZONS = [100, 1000, 10_000, 100_000, 1_000_000]
ANNEAL_SMALL_T = -0.30
"""docs/model.md's measured anneal-fraction exponent at small ``T`` (not a derived law)."""


def horizons(quick: bool) -> list[int]:
    return QUICK_HORIZONS if quick else FULL_HORIZONS


def run(quick: bool = False, progress=None) -> Result:
    """Solve the hard problem at every horizon; measure the anneal fraction and loss exponent.

    A step anneals when :math:`\\eta_t < 0.95\\,\\eta_{max}`. Checks: the anneal-fraction
    exponent is within 0.1 of docs/model.md's small-``T`` value -0.30 (and negative: the fraction
    vanishes); the loss exponent within 0.015 of :math:`(a-1)/b` over ``T >= 1000``.

    The full run solves smooth schedules (controls linear between knots, step by step), the
    quick run (tests, notebooks) piecewise-constant ones.
    """
    T = horizons(quick)
    # smooth schedules in the full run (step by step, slow at 10^6), staircases in the quick one
    interpolation = interpolation_of(quick)
    sols = solutions(HARD, T, HARD_LR_MAX, progress=progress, interpolation=interpolation)
    theory = exponents(float(HARD.a), float(HARD.b))
    fit = measure(sols)
    late = measure([s for s in sols if s.horizon >= 1000])
    anneal = fit["anneal_fraction"]
    slope = fit_exponent(T, anneal)
    checks = [
        Check("hard anneal-fraction exponent", ANNEAL_SMALL_T, slope, 0.1, decades(T)),
        Check(
            "hard loss exponent (optimal)",
            theory.loss_optimal,
            late["loss_exponent"],
            0.015,
            decades([t for t in T if t >= 1000]),
        ),
        Check(
            "hard xi (peak rate stays at the cap)",
            theory.xi,
            late["xi"],
            0.01,
            decades([t for t in T if t >= 1000]),
        ),
    ]
    numbers = {
        "problem": HARD.to_dict(),
        "lr_max": HARD_LR_MAX,
        "horizons": T,
        "interpolation": interpolation,
        "final_loss": [s.final_loss for s in sols],
        "anneal_fraction": anneal,
        "anneal_exponent": slope,
        "fit": late,
        "theory": theory.to_dict(),
    }
    fig = plotting.plot_hard_anneal(sols, anneal, slope)
    return Result("hard_phase", numbers, checks, {"hard_phase": fig})
