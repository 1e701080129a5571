r"""Final loss against the horizon: the optimal schedule against the tuned baselines.

Theory (docs/model.md): optimal :math:`L_T \sim T^{-(a-1)/a}` (easy) or :math:`T^{-(a-1)/b}` (hard);
optimal constant rate :math:`\sim T^{-(a-1)/(a-1+b)}` (derived in docs/model.md, "check it"). The
optimum beats the optimal constant and the optimal power law *in rate*: the margin grows with
``T``. The baselines are those ``solve`` tunes (each family at its own best parameters).
"""

from __future__ import annotations

from ..model.theory import exponents, fit_exponent
from . import easy_phase, hard_phase, plotting
from ._common import (
    EASY,
    EASY_LR_MAX,
    HARD,
    HARD_LR_MAX,
    Check,
    Result,
    decades,
    interpolation_of,
    solutions,
)

SCHEDULES = ("optimal", "constant", "power_law", "cosine")


def curves(sols) -> dict[str, list[float]]:
    """Final loss per horizon of the optimum and of each tuned baseline."""
    out = {"optimal": [s.final_loss for s in sols]}
    for name in SCHEDULES[1:]:
        out[name] = [s.baselines[name].final_loss for s in sols]
    return out


def run(quick: bool = False, progress=None) -> Result:
    """Loss exponents over ``T >= 1000`` for both phases (the solves, smooth in full runs, are
    shared with :mod:`.easy_phase` and :mod:`.hard_phase`).

    Checks: the easy-phase optimal and constant exponents within 0.05 of theory (0.08 quick);
    the margin over the optimal constant and power law grows from the smallest to the largest
    ``T`` in both phases (reported as the ratio of the last margin to the first, > 1).
    """
    numbers, checks, panels = {}, [], {}
    for label, problem, cap, T in (
        ("easy", EASY, EASY_LR_MAX, easy_phase.horizons(quick)),
        ("hard", HARD, HARD_LR_MAX, hard_phase.horizons(quick)),
    ):
        sols = solutions(problem, T, cap, progress=progress, interpolation=interpolation_of(quick))
        loss = curves(sols)
        theory = exponents(float(problem.a), float(problem.b))
        late = [i for i, t in enumerate(T) if t >= 1000]
        fitted = {
            k: -fit_exponent([T[i] for i in late], [v[i] for i in late]) for k, v in loss.items()
        }
        where = decades([T[i] for i in late])
        tol = 0.08 if quick else 0.05
        if label == "easy":
            checks += [
                Check(
                    "easy loss exponent, optimal constant",
                    theory.loss_constant,
                    fitted["constant"],
                    tol,
                    where,
                )
            ]
        for base in ("constant", "power_law"):
            first = loss[base][0] / loss["optimal"][0] - 1
            last = loss[base][-1] / loss["optimal"][-1] - 1
            checks.append(
                Check(
                    f"{label}: margin over {base}, last / first (> 1)",
                    1.0,
                    last / first,
                    0.0,
                    decades(T),
                    relation="above",
                )
            )
        numbers[label] = {
            "horizons": T,
            "interpolation": interpolation_of(quick),
            "final_loss": loss,
            "fitted_exponent": fitted,
            "theory": {"optimal": theory.loss_optimal, "constant": theory.loss_constant},
        }
        panels[label] = (
            T,
            loss,
            {
                "optimal": theory.loss_optimal,
                "constant": theory.loss_constant if label == "easy" else None,
            },
        )
    fig = plotting.plot_loss_scaling(panels)
    return Result("loss_scaling", numbers, checks, {"loss_scaling": fig})
