r"""What theory predicts for the power-law random-feature model, and slope fits to check it.

With eigenvalue exponent ``b`` and target exponent ``a`` (both > 1), docs/model.md and the source
paper
(Bordelon & Mori 2026) give, for the optimal learning-rate schedule at horizon ``T``:

* phase: *easy* when ``a > b``, *hard* when ``a < b``;
* easy phase: :math:`\eta^*_T(t) \simeq T^{-\xi} (1 - t/T)^{\delta}` with :math:`\xi = 1 - b/a`
  and :math:`\delta = 2b - 1`; optimal final loss :math:`\sim T^{-(a-1)/a}`;
* hard phase: warmup-stable-decay at the cap, :math:`\xi = 0`; final loss
  :math:`\sim T^{-(a-1)/b}`;
* optimal constant rate: final loss :math:`\sim T^{-(a-1)/(a-1+b)}` in the easy phase
(docs/model.md,
  "derived, check it"); in the hard phase a constant rate at the cap is limited by its noise floor.

These are asymptotic: at ``T ~ 1e3`` fitted exponents are 20-30% off (docs/model.md), so
:func:`fit_exponent` reports local slopes over a range of ``T`` rather than one number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "Exponents",
    "phase",
    "exponents",
    "compute_optimal_exponents",
    "fit_exponent",
    "local_exponents",
    "measure",
]


def _check(a: float, b: float) -> tuple[float, float]:
    a, b = float(a), float(b)
    if not (math.isfinite(a) and a > 1):
        raise ValueError(f"a must be a finite number > 1, got a={a:g}")
    if not (math.isfinite(b) and b > 1):
        raise ValueError(f"b must be a finite number > 1, got b={b:g}")
    return a, b


def phase(a: float, b: float) -> str:
    """``"easy"`` if ``a > b``, ``"hard"`` if ``a < b``, ``"boundary"`` if equal."""
    a, b = _check(a, b)
    return "easy" if a > b else "hard" if a < b else "boundary"


@dataclass(frozen=True)
class Exponents:
    """Theory exponents for ``(a, b)``; loss exponents ``p`` mean final loss ``~ T^-p``.

    Attributes:
        phase: ``"easy"``, ``"hard"`` or ``"boundary"``.
        xi: horizon exponent of the peak learning rate, :math:`\\eta^* \\sim T^{-\\xi}`.
        delta: exponent of the final decay, :math:`(1 - t/T)^\\delta` (easy phase).
        loss_optimal: loss exponent of the optimal schedule.
        loss_constant: loss exponent of the optimal constant schedule (easy phase).
        batch_ramp: exponent of the wall-clock-optimal batch ramp
            :math:`m^*(t) \\sim (1 - t/T)^{1/(2b) - 1}`.
    """

    phase: str
    xi: float
    delta: float
    loss_optimal: float
    loss_constant: float
    batch_ramp: float

    def to_dict(self) -> dict:
        return asdict(self)


def exponents(a: float, b: float) -> Exponents:
    """The theory exponents of docs/model.md for ``(a, b)``."""
    a, b = _check(a, b)
    ph = phase(a, b)
    easy = a >= b
    return Exponents(
        phase=ph,
        xi=(1.0 - b / a) if easy else 0.0,
        delta=2.0 * b - 1.0,
        loss_optimal=(a - 1.0) / a if easy else (a - 1.0) / b,
        loss_constant=(a - 1.0) / (a - 1.0 + b),
        batch_ramp=1.0 / (2.0 * b) - 1.0,
    )


def compute_optimal_exponents(a: float, b: float) -> dict[str, float]:
    r"""Compute-optimal exponents under :math:`C = N T m` (docs/model.md (compute-optimal section),
    inferred, to check).

    A width-``N`` model adds :math:`N^{-(a-1)}` to the loss; with the optimal schedule the
    number of modes learned in ``T`` steps is :math:`T^{1/a}` (easy) or :math:`T^{1/b}` (hard).
    Balancing the two gives :math:`N^* \sim C^{1/(c+1)}`, :math:`T^* \sim C^{c/(c+1)}` and
    :math:`L^* \sim C^{-(a-1)/(c+1)}` with ``c = a`` (easy) or ``c = b`` (hard).

    Returns ``{"width", "horizon", "loss"}``: exponents of :math:`N^*`, :math:`T^*` and
    :math:`L^*` in ``C`` (the loss one positive for a decaying loss).
    """
    a, b = _check(a, b)
    c = a if a >= b else b
    return {"width": 1.0 / (c + 1.0), "horizon": c / (c + 1.0), "loss": (a - 1.0) / (c + 1.0)}


def fit_exponent(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (``y ~ x^slope``)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise ValueError("need at least two (x, y) pairs of equal length")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("power-law fits need positive x and y")
    slope, _ = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope)


def local_exponents(x, y) -> np.ndarray:
    """Slopes between consecutive points in log-log: how a fitted exponent drifts with ``x``."""
    x, y = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    return np.diff(y) / np.diff(x)


def measure(solutions, *, fractions=(0.3, 0.5, 0.7), decay=(0.5, 0.95), cap_level=0.95) -> dict:
    r"""Exponents measured from optimal schedules solved at several horizons.

    Args:
        solutions: objects with ``.schedule`` (knots), ``.final_loss`` and ``.lr_max`` (e.g.
            :class:`optsched.Solution`), for increasing horizons ``T``.
        fractions: ``t/T`` values at which :math:`\eta^*` is compared across ``T`` (for ``xi``).
        decay: the ``t/T`` range over which ``delta`` is fitted on the largest ``T``.
        cap_level: steps with :math:`\eta < \text{cap\_level}\,\eta_{max}` count as annealing.

    Returns:
        ``{"horizons", "final_loss", "loss_exponent", "loss_exponent_local", "xi",
        "xi_local", "delta", "anneal_fraction"}``. Exponents are positive for decaying quantities
        (loss ``~ T^-p`` gives ``p``). ``*_local`` are slopes between consecutive horizons,
        which show how the fit drifts towards the asymptote.
    """
    sols = sorted(solutions, key=lambda s: s.schedule.horizon)
    if len(sols) < 2:
        raise ValueError("measuring exponents needs solutions at two or more horizons")
    T = np.array([s.schedule.horizon for s in sols], dtype=float)
    loss = np.array([float(s.final_loss) for s in sols])
    lr_at = np.array(
        [
            [float(s.schedule.lr_at(int(round(f * (s.schedule.horizon - 1))))) for f in fractions]
            for s in sols
        ]
    )
    xi_local = -np.mean([local_exponents(T, lr_at[:, j]) for j in range(len(fractions))], axis=0)
    xi = -float(np.mean([fit_exponent(T, lr_at[:, j]) for j in range(len(fractions))]))
    big = sols[-1]
    t = np.arange(big.schedule.horizon)
    u = t / big.schedule.horizon
    lr = np.asarray(big.schedule.lr_at(t))
    keep = (u >= decay[0]) & (u <= decay[1]) & (lr > 0)
    delta = fit_exponent(1.0 - u[keep], lr[keep]) if keep.sum() >= 2 else float("nan")
    anneal = [
        float(
            np.mean(
                np.asarray(s.schedule.lr_at(np.arange(s.schedule.horizon))) < cap_level * s.lr_max
            )
        )
        for s in sols
    ]
    return {
        "horizons": T.astype(int).tolist(),
        "final_loss": loss.tolist(),
        "loss_exponent": -fit_exponent(T, loss),
        "loss_exponent_local": (-local_exponents(T, loss)).tolist(),
        "xi": xi,
        "xi_local": xi_local.tolist(),
        "delta": float(delta),
        "anneal_fraction": anneal,
    }
