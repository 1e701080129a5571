r"""Beyond the learning rate: the optimal momentum :math:`\beta^*(t)` and batch-size ramps.

* Momentum (hard phase): ``solve(..., LearningRateMomentum(...))`` at several ``T`` (smooth
  controls, linear between knots, in full runs); the source paper reports that an optimal
  :math:`\beta(t)` improves the loss-scaling *exponent* in the hard phase. Here the gain is
  measured as the fitted loss exponent with momentum minus without. The form matters:
  heavy-ball momentum (optax's trace, effective step :math:`\eta/(1-\mu)`) can step beyond the
  learning-rate cap where the hard-phase optimum sits, EMA momentum (effective step
  :math:`\eta`) cannot; the full run solves both.
* Batch ramps (easy phase): at a fixed sample budget ``D``, the joint :math:`(\eta, m)` optimum
  at each ``T`` (:func:`optsched.wallclock.budget_sweep`); the fewest steps to reach a target
  loss with the ramp and with the constant batch ``D/T``, and the ramp exponent against theory
  :math:`m^*(t) \sim (1 - t/T)^{1/(2b) - 1}`.
"""

from __future__ import annotations

import math
from typing import Any

from ..model.problem import PowerLawProblem
from ..model.theory import exponents, fit_exponent
from ..solver.parameterisation import LearningRateMomentum
from ..solver.solve import solve
from ..wallclock import budget_sweep, ramp_exponent
from . import plotting
from ._common import EASY, HARD, HARD_LR_MAX, Check, Result, decades, interpolation_of

QUICK: dict[str, Any] = dict(
    momentum_horizons=[100, 300, 1000], forms=("heavy_ball",), budget=2048, mean_batches=(8, 4, 2)
)
FULL: dict[str, Any] = dict(
    momentum_horizons=[100, 300, 1000, 3000],
    forms=("heavy_ball", "ema"),
    budget=16384,
    mean_batches=(32, 16, 8, 4, 2),
)
BATCH_RANGE = (1.0, 64.0)


def run(quick: bool = False, progress=None) -> Result:
    """Momentum on the hard problem, batch ramps on the easy one (both at infinite width).

    Checks: the heavy-ball momentum exponent gain is positive; the ramp saves steps at equal samples
    (> 0); the ramp exponent, fitted on the largest ``T`` over ``t/T`` in ``[0.5, 0.95]`` and
    averaged over horizons, is within 0.12 of :math:`1/(2b) - 1` (quick: 0.2).
    """
    say = progress or (lambda msg: None)
    cfg = QUICK if quick else FULL
    T = cfg["momentum_horizons"]
    momentum = {}
    for form in cfg["forms"]:
        sols = []
        for horizon in T:
            say(f"momentum ({form}), T = {horizon}")
            controls = LearningRateMomentum(lr_max=HARD_LR_MAX, form=form)
            sols.append(solve(HARD, horizon, controls, interpolation=interpolation_of(quick)))
        momentum[form] = sols
    loss_sgd = [s.stats["lr_only_final_loss"] for s in momentum["heavy_ball"]]
    p_sgd = -fit_exponent(T, loss_sgd)
    p_m = {form: -fit_exponent(T, [s.final_loss for s in sols]) for form, sols in momentum.items()}

    D = cfg["budget"]
    horizons = [int(D / m) for m in cfg["mean_batches"]]
    easy = PowerLawProblem.from_dict({**EASY.to_dict(), "batch": 1, "features": math.inf})
    sweep = budget_sweep(easy, D, horizons, batch_range=BATCH_RANGE, progress=say)
    target = float(sweep.loss_constant[len(horizons) // 2])
    steps_ramp, steps_constant = sweep.steps_to(target)
    saved = 1.0 - steps_ramp / steps_constant
    ramps = [ramp_exponent(s) for s in sweep.solutions]
    theory_ramp = exponents(float(EASY.a), float(EASY.b)).batch_ramp
    mean_ramp = sum(ramps) / len(ramps)

    checks = [
        Check(
            "hard: loss-exponent gain from heavy-ball momentum",
            0.0,
            p_m["heavy_ball"] - p_sgd,
            0.0,
            decades(T),
            relation="above",
        ),
        Check(
            "easy: steps saved by the batch ramp at equal samples",
            0.0,
            saved,
            0.0,
            f"D = {D}, T = {min(horizons)} .. {max(horizons)}",
            relation="above",
        ),
        Check(
            "easy: batch-ramp exponent 1/(2b) - 1",
            theory_ramp,
            mean_ramp,
            0.2 if quick else 0.12,
            f"D = {D}, T = {min(horizons)} .. {max(horizons)}",
        ),
    ]
    numbers = {
        "momentum": {
            "problem": HARD.to_dict(),
            "lr_max": HARD_LR_MAX,
            "horizons": T,
            "interpolation": interpolation_of(quick),
            "final_loss": {form: [s.final_loss for s in sols] for form, sols in momentum.items()},
            "final_loss_sgd": loss_sgd,
            "loss_exponent": p_m,
            "loss_exponent_sgd": p_sgd,
        },
        "batch": {
            "problem": easy.to_dict(),
            "budget": D,
            "batch_range": list(BATCH_RANGE),
            "horizons": horizons,
            "loss_ramp": sweep.loss_ramp.tolist(),
            "loss_constant": sweep.loss_constant.tolist(),
            "target_loss": target,
            "steps_ramp": steps_ramp,
            "steps_constant": steps_constant,
            "steps_saved": saved,
            "ramp_exponents": ramps,
            "theory_ramp": theory_ramp,
        },
    }
    figures = {
        "momentum": plotting.plot_momentum(momentum, loss_sgd),
        "batch_ramp": plotting.plot_batch_ramps(sweep, target, theory_ramp),
    }
    return Result("momentum_and_batch", numbers, checks, figures)
