r"""Standard schedule families, as :class:`~optsched.controls.Schedule` objects on knots.

With peak learning rate :math:`\eta_0`, horizon ``T`` and ``u = t / (T - 1)``:

* ``constant``: :math:`\eta_0`;
* ``power_law``: :math:`\eta_0 (1 + t)^{-\chi}`;
* ``cosine``: :math:`\eta_0 \tfrac12 (1 + \cos \pi u)` (to zero at the last step);
* ``linear``: :math:`\eta_0 (1 - u)`;
* ``wsd``: warmup-stable-decay: :math:`\eta_0` until the last ``cooldown`` fraction, then linear
  (or ``1 - sqrt``) decay to zero.

Smooth families are sampled on at most ``knots`` knots with linear interpolation (every step when
``T <= knots``); the file, export and dynamics all read them through the same expansion, so the
sampled schedule *is* the schedule.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .controls import Schedule

__all__ = ["FAMILIES", "family"]

FAMILIES = ("constant", "power_law", "cosine", "linear", "wsd")


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
) -> Schedule:
    """The schedule ``name`` (one of :data:`FAMILIES`) peaking at ``peak_lr``, over ``horizon``
    steps."""
    if name not in FAMILIES:
        raise ValueError(f"unknown schedule family {name!r}; choose from {', '.join(FAMILIES)}")
    if not peak_lr >= 0:
        raise ValueError(f"peak learning rate must be >= 0, got {peak_lr}")
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
    return Schedule(steps, np.maximum(lr, 0.0), horizon=horizon)
