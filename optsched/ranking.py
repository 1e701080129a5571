r"""Rank candidate schedules by a fitted model's predicted final loss, with uncertainties.

The uncertainty is the fit's (Laplace / Gauss-Newton) covariance :math:`\Sigma` of the model's
parameters :math:`\theta`, carried to the predictions by the delta method: with
:math:`g_c = \partial L_c / \partial \theta` for candidate ``c``,

.. math:: \operatorname{Cov}(L_c, L_d) = g_c^\top \Sigma\, g_d,

and the probability that the first-ranked candidate beats the second is
:math:`\Phi\big((L_2 - L_1) / \sqrt{V_{11} + V_{22} - 2 V_{12}}\big)`: the two predictions share
the model's parameters, so their errors are correlated and the difference is surer than either.
This is the uncertainty of the fit given the model; it does not include the model's own error
(how far the family is from the truth), which held-out runs measure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._precision import with_float64
from ._threads import map_on_cores
from .loss_models.base import AbstractLossModel, _in_units_of
from .schedule import Schedule

__all__ = ["rank"]


@with_float64
def rank(model: AbstractLossModel, candidates: Sequence[tuple[str, Schedule]]) -> dict:
    """Order ``candidates`` (``(name, schedule)`` pairs) by ``model``'s predicted final loss.

    Returns ``{"ranking": [{"candidate", "final_step", "predicted_final_loss", "stderr"}, ...]
    (best first), "p_first_beats_second": p, "covariance": [[...]]}``; ``stderr`` and ``p`` are
    ``None`` when the model carries no covariance.
    """
    if not candidates:
        raise ValueError("rank needs at least one candidate schedule")
    values, cov = model.parameters()

    def loss_and_gradient(schedule: Schedule) -> tuple[float, np.ndarray]:
        schedule = _in_units_of(model, schedule)
        lr = schedule.per_step(1.0)[0]
        step = jnp.asarray([schedule.horizon])

        def final(v):
            loss = model.curve_at_parameters(v, lr, step)[0]
            return loss, loss

        # forward mode: a handful of parameters, one output, and no trajectory kept for a
        # backward pass through the T steps
        grad, loss = jax.jacfwd(final, has_aux=True)(jnp.asarray(values))
        return float(loss), np.asarray(grad)

    # the candidates are independent: side by side, one per core
    out = map_on_cores(loss_and_gradient, [schedule for _, schedule in candidates])
    losses = np.asarray([loss for loss, _ in out])
    grads = [grad for _, grad in out]
    if not np.all(np.isfinite(losses)):
        bad = [name for (name, _), x in zip(candidates, losses, strict=True) if not np.isfinite(x)]
        raise ValueError(f"the model predicts no finite final loss for {', '.join(bad)}")
    V = None if cov is None else np.asarray(grads) @ np.asarray(cov) @ np.asarray(grads).T
    order = np.argsort(losses, kind="stable")
    ranking = [
        {
            "candidate": candidates[i][0],
            "final_step": candidates[i][1].horizon,
            "predicted_final_loss": float(losses[i]),
            "stderr": None if V is None else float(math.sqrt(max(V[i, i], 0.0))),
        }
        for i in order
    ]
    p = None
    if V is not None and len(order) > 1:
        i, j = order[0], order[1]
        var = V[i, i] + V[j, j] - 2 * V[i, j]
        gap = losses[j] - losses[i]
        if var > 0:
            p = 0.5 * (1.0 + math.erf(gap / math.sqrt(2.0 * var)))
        else:  # the two predictions move together: certain unless they are equal (a tie)
            p = 1.0 if gap > 0 else 0.5
    return {
        "ranking": ranking,
        "p_first_beats_second": p,
        "covariance": None if V is None else V[np.ix_(order, order)].tolist(),
    }
