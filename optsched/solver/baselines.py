r"""Standard schedule families, as :class:`~optsched.schedule.Schedule` objects on knots.

With peak learning rate :math:`\eta_0`, horizon ``T`` and ``u = t / (T - 1)``:

* ``constant``: :math:`\eta_0`;
* ``power_law``: :math:`\eta_0 (1 + t)^{-\chi}`;
* ``cosine``: :math:`\eta_0 \tfrac12 (1 + \cos \pi u)` (to zero at the last step);
* ``linear``: :math:`\eta_0 (1 - u)`;
* ``wsd``: warmup-stable-decay: :math:`\eta_0` until the last ``cooldown`` fraction, then linear
  (or ``1 - sqrt``) decay to zero.

With a floor :math:`\eta_{min}` (``lr_min``, default 0) each family is
:math:`\eta_{min} + (\eta_0 - \eta_{min})\,s(t)` with :math:`s` the shape above at peak 1:
the decays end at :math:`\eta_{min}` instead of zero (a cosine to 10% of its peak).

Smooth families are sampled on at most ``knots`` knots with linear interpolation (every step when
``T <= knots``); the file, export and dynamics all read them through the same expansion, so the
sampled schedule *is* the schedule.
"""

from __future__ import annotations

import math
from typing import Literal

import equinox as eqx
import numpy as np

from .._precision import with_float64
from ..loss_models.base import AbstractObjective
from ..schedule import Schedule
from .family_names import FAMILIES

__all__ = ["FAMILIES", "BaselineResult", "family", "tune_baselines"]


def _per_step(schedule: Schedule) -> np.ndarray:
    """The schedule's rate at every step, by NumPy (nothing to compile for each new knot count)."""
    return np.asarray(schedule.per_step(1.0)[0])


def _knot_steps(horizon: int, knots: int, extra=()) -> np.ndarray:
    if horizon <= knots:
        return np.arange(horizon)
    base = np.round(np.linspace(0, horizon - 1, knots)).astype(np.int64)
    return np.unique(np.concatenate([base, np.asarray(extra, dtype=np.int64)]))


def family(
    name: str,
    peak_lr: float,
    horizon: int,
    *,
    chi: float = 0.5,
    cooldown: float = 0.2,
    cooldown_shape: Literal["linear", "sqrt"] = "linear",
    knots: int = 1025,
    lr_min: float = 0.0,
) -> Schedule:
    """The schedule ``name`` (one of :data:`FAMILIES`) peaking at ``peak_lr``, over ``horizon``
    steps, never below ``lr_min`` (its decays end there)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown schedule family {name!r}; choose from {', '.join(FAMILIES)}")
    if not peak_lr >= 0:
        raise ValueError(f"peak learning rate must be >= 0, got {peak_lr}")
    if not 0 <= lr_min <= peak_lr:
        raise ValueError(f"lr_min must be in [0, peak] = [0, {peak_lr:g}], got {lr_min}")
    if name == "constant" or horizon == 1:
        return Schedule.constant(peak_lr, horizon)
    if not 0.0 < cooldown <= 1.0:
        raise ValueError(f"cooldown must be a fraction in (0, 1], got {cooldown}")
    span = max(horizon - 1, 1)
    start = int(round((1.0 - cooldown) * span))
    steps = _knot_steps(horizon, knots, extra=[start] if name == "wsd" else ())
    if name == "power_law":
        log_steps = np.round(np.geomspace(1, span, min(knots, span)))
        steps = np.unique(np.concatenate([[0], log_steps, [span]])).astype(np.int64)
    u = steps / span
    if name == "power_law":
        lr = peak_lr * (1.0 + steps) ** (-chi)
    elif name == "cosine":
        lr = peak_lr * 0.5 * (1.0 + np.cos(np.pi * u))
    elif name == "linear":
        lr = peak_lr * (1.0 - u)
    else:  # wsd
        frac = np.clip((steps - start) / max(span - start, 1), 0.0, 1.0)
        decay = frac if cooldown_shape == "linear" else np.sqrt(frac)
        lr = peak_lr * (1.0 - decay)
    lr = lr_min + (1.0 - lr_min / peak_lr) * lr if lr_min > 0 else lr
    return Schedule(steps, np.maximum(lr, lr_min), horizon=horizon)


# ------------------------------------------------------------------------------------ tuning
class BaselineResult(eqx.Module):
    """A tuned baseline: its family, tuned parameters, schedule and predicted final loss."""

    name: str = eqx.field(static=True)
    peak_lr: float = eqx.field(static=True)
    params: tuple = eqx.field(static=True)  # ((name, value), ...) beyond the peak
    final_loss: float = eqx.field(static=True)
    schedule: Schedule
    at_cap: bool = eqx.field(static=True, default=False)
    bracketed: bool = eqx.field(static=True, default=True)

    def to_dict(self) -> dict:
        return {
            "peak_lr": self.peak_lr,
            **dict(self.params),
            "final_loss": self.final_loss,
            "at_cap": self.at_cap,
            "bracketed": self.bracketed,
        }


@with_float64
def _variants(families) -> list[tuple[str, dict]]:
    out = []
    for name in families:
        if name == "power_law":
            out += [(name, dict(chi=c)) for c in (0.0, 0.1, 0.2, 0.3, 0.5, 0.8)]
        elif name == "wsd":
            out += [
                (name, dict(cooldown=f, cooldown_shape=s))
                for s in ("linear", "sqrt")
                for f in (0.1, 0.25, 0.5)
            ]
        else:
            out.append((name, {}))
    return out


@with_float64
def tune_baselines(
    objective: AbstractObjective,
    horizon: int,
    lr_max: float,
    *,
    families=FAMILIES,
    points: int = 12,
    rounds: int = 3,
    lr_min: float = 0.0,
) -> dict[str, BaselineResult]:
    """Tune every family's parameters for the final loss at ``horizon`` under
    ``lr_min <= lr <= lr_max`` (with a floor, the families decay to ``lr_min``, :func:`family`).

    The same code tunes the baselines of every loss model: ``objective`` (a model bound to the
    horizon, :meth:`~optsched.loss_models.base.AbstractLossModel.objective`) evaluates a grid
    of peaks for all variants at once. The power law tunes ``chi`` on
    ``{0, 0.1, 0.2, 0.3, 0.5, 0.8}``; WSD its cooldown fraction on ``{0.1, 0.25, 0.5}`` with a
    linear or ``1 - sqrt`` cooldown. Each variant's peak is found on a log grid of
    ``2 points - 1`` values over ``(1e-8 lr_max, lr_max]`` (:data:`SEARCH_DECADES`; from
    ``lr_min`` when that is higher); each
    family's two best variants are then refined
    ``rounds - 1`` times around their best peaks. Losses are those of the schedules as stored
    (knot expansion), in the objective's units.

    Then the continuous parameter of the best variant (WSD's cooldown fraction, the power
    law's ``chi``) is refined with its peak: :data:`REFINE_ROUNDS` rounds of a local grid,
    each around the best so far and half as wide, so that a cooldown of 0.35 is found when the
    fixed grid holds 0.25 and 0.5. The search interval of the peak ends at the cap, and a
    result records whether its peak is at the cap (``at_cap``) and whether a finite optimum was
    bracketed (``bracketed``: false when every peak diverged or the best is at the low end of
    the search, ``1e-8 lr_max``).
    """
    for name in families:
        if name not in FAMILIES:
            raise ValueError(f"unknown schedule family {name!r}; choose from {', '.join(FAMILIES)}")
    variants = _variants(families)
    shapes = np.stack([_per_step(family(n, 1.0, horizon, **kw)) for n, kw in variants])
    V = len(variants)
    if not 0 <= lr_min < lr_max:
        raise ValueError(f"lr_min must be in [0, lr_max) = [0, {lr_max:g}), got {lr_min}")
    bottom = max(lr_max / SEARCH_DECADES, lr_min)  # the lowest peak searched
    lo = np.full(V, math.log(bottom))
    hi = np.full(V, math.log(lr_max))
    best_peak, best_loss = np.full(V, lr_max), np.full(V, np.inf)
    active = np.arange(V)  # after the first round, only each family's best variants are refined
    for r in range(rounds):
        n = 2 * points - 1 if r == 0 else points  # the first grid spans eight decades
        grid = np.clip(np.exp(np.linspace(lo[active], hi[active], n, axis=1)), bottom, lr_max)
        losses = objective.baseline_final_losses(shapes[active], grid, lr_min=lr_min)
        i = np.argmin(losses, axis=1)
        rows = np.arange(len(active))
        better = losses[rows, i] < best_loss[active]
        best_peak[active] = np.where(better, grid[rows, i], best_peak[active])
        best_loss[active] = np.where(better, losses[rows, i], best_loss[active])
        width = (hi[active] - lo[active]) / (n - 1)
        lo[active] = np.maximum(np.log(best_peak[active]) - width, math.log(bottom))
        hi[active] = np.minimum(np.log(best_peak[active]) + width, math.log(lr_max))
        if r == 0:  # keep the two best variants of each family
            names = np.array([n for n, _ in variants])
            ranked = [
                sorted(np.flatnonzero(names == n), key=lambda v: best_loss[v])
                for n in dict.fromkeys(names)
            ]
            active = np.concatenate([r[:2] for r in ranked])
    best: dict[str, tuple[float, float, dict]] = {}
    for v, (name, kw) in enumerate(variants):
        if name not in best or best_loss[v] < best[name][1]:
            best[name] = (float(best_peak[v]), float(best_loss[v]), kw)
    for name, key in CONTINUOUS.items():
        if name in best:
            best[name] = _refine(
                objective, horizon, (bottom, lr_max, lr_min), name, key, *best[name], points
            )
    out = {}
    for name, (peak, loss, kw) in best.items():
        params = tuple((k, v if isinstance(v, str) else float(v)) for k, v in kw.items())
        out[name] = BaselineResult(
            name,
            peak,
            params,
            loss,
            family(name, peak, horizon, lr_min=lr_min, **kw),
            at_cap=peak >= lr_max * (1 - 1e-12),
            # a finite optimum inside the searched peaks, not at their low end
            bracketed=math.isfinite(loss) and peak > bottom * 1.0001,
        )
    return out


SEARCH_DECADES = 1e8
"""Peaks are searched over ``(lr_max / SEARCH_DECADES, lr_max]``."""

CONTINUOUS = {"wsd": ("cooldown", 0.0, 1.0), "power_law": ("chi", 0.0, 2.0)}
"""Each family's continuous parameter beyond the peak, with its range."""

REFINE_ROUNDS = 4


def _refine(objective, horizon, bounds, name, key, peak, loss, kw, points):
    """Local grids in ``(parameter, log peak)`` around the best, halving each round; ``bounds``
    is ``(lowest peak, highest peak, floor)``."""
    bottom, lr_max, lr_min = bounds
    param, low, high = key
    value = float(kw[param])
    step = 0.5 * value if value > 0 else 0.1  # the first round spans about a factor of 3
    log_width = 0.5  # peaks within e^{+-0.5} of the best
    for _ in range(REFINE_ROUNDS):
        values = np.unique(np.clip(value + step * np.linspace(-1, 1, 5), low, high))
        values = values[values > 0] if param == "cooldown" else values
        shapes = np.stack(
            [_per_step(family(name, 1.0, horizon, **{**kw, param: x})) for x in values]
        )
        lo = max(math.log(peak) - log_width, math.log(bottom))
        hi = min(math.log(peak) + log_width, math.log(lr_max))
        grid = np.clip(np.exp(np.linspace(lo, hi, points)), bottom, lr_max)
        losses = objective.baseline_final_losses(
            shapes, np.broadcast_to(grid, (len(values), points)), lr_min=lr_min
        )
        i, j = np.unravel_index(np.argmin(losses), losses.shape)
        if losses[i, j] < loss:
            value, peak, loss = float(values[i]), float(grid[j]), float(losses[i, j])
        step *= 0.5
        log_width *= 0.5
    return peak, loss, {**kw, param: value}
