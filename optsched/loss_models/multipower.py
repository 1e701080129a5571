r"""The multi-power law of Luo et al. (2025): an empirical loss model of learning-rate schedules.

With per-step rates :math:`\eta_\tau` (normalised by ``lr_unit``), the loss after ``t`` steps is

.. math::
    L(t) = L_0 + B\,(\eta_{\max} - 1)\,G\big(\eta_{\max}^{-\gamma} S_1(t)\big)
        + A\,S_1(t)^{-\alpha} - LD(t),
    \qquad S_1(t) = \sum_{\tau < t} \eta_\tau,

.. math::
    LD(t) = B \sum_{k = p + 1}^{t - 1} (\eta_{k-1} - \eta_k)\,
        G\big(\eta_k^{-\gamma} S_k(t)\big), \quad S_k(t) = \sum_{\tau = k}^{t - 1} \eta_\tau,
    \quad G(x) = 1 - (C x + 1)^{-\beta},

where ``p`` is the step of the peak rate :math:`\eta_{\max}`. :math:`S_1` counts the warmup
too, which is the paper's :math:`S_1 + S_W`; the loss reduction :math:`LD` sums over the decay
after the peak (the paper's schedules warm up, then decay). A rise after the peak is a negative
drop; it relaxes at the lower of its two rates, :math:`\eta_{k-1}` (a drop, as published, at
:math:`\eta_k`). Without that rule a drop to a tiny rate for one step relaxes at once
(:math:`\eta_k^{-\gamma}` is huge) while the rise back barely counts, and an optimiser finds
schedules that flicker to zero and "gain" what no run would: on the 25M pilots, 0.8 nats below
cosine.

The first :math:`B` term is optsched's: the paper's runs share one peak, so its :math:`L_0` is
the floor at that peak (here 1, the pilots' peak) and the term vanishes. Read :math:`LD` as the
relaxation of a noise floor :math:`B\eta` towards the current rate, each change
:math:`\eta_{k-1} - \eta_k` relaxing by :math:`G` over the area after it. A schedule that
peaks at :math:`\eta_{\max} \neq 1` is then the pilots' schedule with one more change, from 1
to :math:`\eta_{\max}` at step 0, relaxing in the same way: the term above. Without it a
higher peak only buys area :math:`S_1`, and the law predicts the 210M benchmark's cosine runs
at twice the pilots' peak 0.24 nats too low; with it, within 0.013 (README). A prediction at
another peak still extrapolates
(:meth:`~optsched.loss_models.base.AbstractLossModel.extrapolation`).

Seven parameters :math:`(L_0, A, \alpha, B, C, \beta, \gamma)`, fitted by
:func:`fit_multi_power_law` by least squares on log losses. At ``t = 0`` the law is undefined
(:math:`S_1 = 0`); fits skip step 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from .._precision import with_float64
from .base import AbstractLossModel, _in_units_of
from .fitting import (
    covariance,
    group_labels,
    least_squares_fit,
    pad_to_bucket,
    pilot_arrays,
    pilot_floor,
    pilot_peaks,
    standard_errors,
)

__all__ = ["MultiPowerLaw", "fit_multi_power_law"]

PARAMETERS = ("L0", "A", "alpha", "B", "C", "beta", "gamma")

RISE_TOLERANCE = 0.01
"""A rise of the rate after the peak larger than this fraction of the peak makes a prediction of
the multi-power law an extrapolation (:meth:`MultiPowerLaw.extrapolation`)."""


class MultiPowerLaw(AbstractLossModel):
    """The multi-power law; rates are divided by ``lr_unit`` (the pilot runs' peak) first.

    Attributes:
        params: ``(L0, A, alpha, B, C, beta, gamma)``.
        lr_unit: the learning rate that counts as 1.
        stderr: standard errors of :data:`PARAMETERS` (empty when not fitted).
        pilot_peaks: the pilot runs' lowest and highest peak rate (real units), when fitted.
        pilot_floor: the lowest rate any pilot used after its peak (real units), when fitted:
            the law's drop term was measured down to it (:meth:`extrapolation`).
        residual_rms: root-mean-square residual of the log loss at the fit.
    """

    params: jax.Array
    lr_unit: float
    stderr: dict
    residual_rms: float = float("nan")
    covariance: np.ndarray | None = None
    pilot_peaks: tuple[float, float] | None = eqx.field(static=True, default=None)
    pilot_floor: float | None = eqx.field(static=True, default=None)

    @property
    def lr_scale(self) -> float:
        """Model (normalised) learning rate per real one: ``1 / lr_unit``."""
        return 1.0 / float(self.lr_unit)

    @with_float64
    def curve_at(self, lr, steps):
        """Loss after ``steps`` updates only (what predictions at logged steps and the solver's
        final loss use). Traced rates (inside the solver) take the exact sum over every step,
        ``O(len(steps) T)``. Concrete ones sum every rate change when ``len(steps)`` times their
        number is at most :data:`EXACT_TERMS` (a final loss is exact); beyond, the terms are
        grouped between the requested steps as in the fits (:func:`drop_terms`:
        ``O(len(steps) log T)`` terms; within 1e-6 relative of the exact sum on the benchmark's
        72,000-step curves)."""
        return self.curve_at_parameters(self.params, lr, steps)

    @with_float64
    def curve(self, lr):
        """Loss after ``0 .. T`` steps (``inf`` at step 0, where the law is undefined)."""
        return _mpl_curve(self.params, jnp.asarray(lr) / self.lr_unit)

    def values(self) -> dict[str, float]:
        return {k: float(v) for k, v in zip(PARAMETERS, self.params, strict=True)}

    def parameters(self):
        return np.asarray(self.params, dtype=np.float64), self.covariance

    def curve_at_parameters(self, values, lr, steps):
        """:meth:`curve_at` at the parameters ``values`` (differentiable in them), by the same
        rule."""
        try:
            lr_np = np.asarray(lr, dtype=np.float64) / self.lr_unit
            steps_np = np.asarray(steps, dtype=np.int64)
        except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
            return _mpl_at(values, jnp.asarray(lr) / self.lr_unit, steps)
        return _at_concrete_rates(values, lr_np, steps_np)

    def extrapolation(self, schedule) -> str | None:
        r"""The base rule (a peak outside the pilots'), and two of the law's own:

        * a rate that rises again after its peak by more than :data:`RISE_TOLERANCE` of the
          peak: the law describes a warm-up followed by decays (its pilots' shape), a later rise
          is its guess (rises relax by optsched's rule in the module docstring, which no pilot
          tested);
        * a rate after the peak below the pilots' lowest (``pilot_floor``, 2% margin): the
          argument of a drop's relaxation :math:`G(\eta_k^{-\gamma} S_k)` grows without bound
          as the rate goes to 0, so ``G`` saturates at once and the law credits a drop towards
          zero in full within a few steps, which no pilot measured.
        """
        reasons = [super().extrapolation(schedule)]
        lr = np.asarray(_in_units_of(self, schedule).per_step(1.0)[0], dtype=np.float64)
        if lr.size >= 2 and np.max(lr) > 0:
            peak = int(np.argmax(lr))
            after = lr[peak:]
            rise = after - np.minimum.accumulate(after)
            if np.max(rise) > RISE_TOLERANCE * lr[peak]:
                step = peak + int(np.argmax(rise > RISE_TOLERANCE * lr[peak]))
                reasons.append(
                    f"the rate rises again after its peak (first at step {step}, by up to "
                    f"{np.max(rise) / lr[peak]:.0%} of the peak): the multi-power law was fitted "
                    "on warm-up then decay, so a rise is an extrapolation"
                )
            floor = self.pilot_floor
            if floor is not None and np.min(after) < 0.98 * floor:
                step = peak + int(np.argmax(after < 0.98 * floor))
                reasons.append(
                    f"the rate falls below the pilots' lowest rate {floor:.3g} (from step "
                    f"{step}, down to {np.min(after):.3g}): the law's drop term was not measured "
                    "there and credits a drop towards zero at once"
                )
        reasons = [r for r in reasons if r is not None]
        return "; ".join(reasons) if reasons else None

    def describe(self) -> dict:
        return {
            "kind": "MultiPowerLaw",
            "values": self.values(),
            "lr_unit": self.lr_unit,
            "stderr": self.stderr,
            "residual_rms": self.residual_rms,
        }


def _mpl_curve(params, lr):
    return _mpl_at(params, lr, jnp.arange(lr.shape[0] + 1))


def drop_steps(lr) -> np.ndarray:
    """The steps ``k`` after the peak at which the rate changes (``lr[k-1] != lr[k]``): the
    only terms of the loss-drop sum that are not zero (concrete rates only)."""
    lr = np.asarray(lr)
    k = np.arange(1, lr.shape[0])
    return k[(k > int(np.argmax(lr))) & (lr[:-1] != lr[1:])]


class DropTerms(NamedTuple):
    r"""The loss-drop sum's terms, grouped (see :func:`drop_terms`); arrays of shape ``(K,)``.

    ``weight`` is the group's total drop :math:`\sum (\eta_{k-1} - \eta_k)`; ``position``
    and ``log_lr`` are the drop-weighted means of :math:`S_1(k)` and :math:`\log \eta_k`;
    ``last`` is the group's last step (the group counts for the loss after ``t > last`` steps).
    """

    weight: np.ndarray
    position: np.ndarray
    log_lr: np.ndarray
    last: np.ndarray


GROUP_RATIO = 0.25
"""A group of drop terms spans at most this fraction of its distance to the next logged step."""

GROUP_WEIGHT = 0.01
"""A group of drop terms drops the rate by at most this much (rates normalised to peak 1)."""


def drop_terms(
    lr, steps, ratio: float | None = GROUP_RATIO, max_weight: float = GROUP_WEIGHT
) -> DropTerms:
    r"""The terms of the loss-drop sum that the loss at ``steps`` needs, grouped.

    Every step whose rate changes after the peak (:func:`drop_steps`) is a term. Between two
    consecutive requested steps the terms are merged into groups whose width is at most
    ``ratio`` times their distance to the next requested step (1, 1, 2, 3, 4, 6, 9, ... steps
    back from it), each group standing for its terms at their drop-weighted position and log
    rate. No group straddles a requested step, so every term is counted at exactly the requested
    steps it precedes; the merge errs only where :math:`G` curves across a group, by the
    midpoint rule's second-order error (below 1e-5 relative on the loss for the fitted laws of
    the benchmark data). ``ratio=None`` keeps every term on its own (exact). A curve of ``n``
    logged steps and ``T`` steps then costs ``O(n \log T)`` terms instead of ``O(T)``.
    """
    lr = np.asarray(lr, dtype=np.float64)
    k = drop_steps(lr)
    cum = np.concatenate([[0.0], np.cumsum(lr)])
    drop = lr[k - 1] - lr[k]
    rate = np.minimum(lr[k - 1], lr[k])  # each change relaxes at the lower of its two rates
    log_lr = np.log(np.where(rate > 0, rate, 1.0))
    if ratio is None or k.size == 0:
        return DropTerms(drop, cum[k], log_lr, k)
    label, n = group_labels(
        k,
        steps,
        ratio=ratio,
        sign=drop,
        cum_weight=np.cumsum(np.abs(drop)),
        max_weight=max_weight,
    )
    weight = np.bincount(label, drop, n)
    safe = np.where(weight != 0, weight, 1.0)
    position = np.bincount(label, drop * cum[k], n) / safe
    mean_log = np.bincount(label, drop * log_lr, n) / safe
    last = np.zeros(n, dtype=np.int64)
    np.maximum.at(last, label, k)
    keep = weight != 0
    return DropTerms(weight[keep], position[keep], mean_log[keep], last[keep])


def _mpl_at(params, lr, steps, terms: DropTerms | None = None):
    """The law after ``steps`` updates: ``O(len(steps) * K)`` time and ``O(K)`` memory, with
    ``K = T`` or, given ``terms`` (:func:`drop_terms` of these rates and steps; what fits pass),
    the number of grouped drop terms: the loss-drop sum runs once per requested step over the
    terms that can be non-zero, never over all ``T`` steps for every step."""
    T = lr.shape[0]
    cum = jnp.concatenate([jnp.zeros(1), jnp.cumsum(lr)])  # cum[t] = S_1(t)
    steps = jnp.asarray(steps)
    if terms is not None:
        return _mpl_law(params, steps, cum[steps], jnp.max(lr), terms)
    k = jnp.arange(T)
    peak = jnp.argmax(lr)
    drop = jnp.where(k > peak, jnp.concatenate([jnp.zeros(1), lr[:-1] - lr[1:]]), 0.0)
    # each change relaxes at the lower of its two rates (eta_k for a drop, as published)
    rate = jnp.minimum(jnp.concatenate([lr[:1], lr[:-1]]), lr)
    log_lr = jnp.log(jnp.where(rate > 0, rate, 1.0))
    return _mpl_law(params, steps, cum[steps], jnp.max(lr), (drop, cum[:-1], log_lr, k))


def _mpl_law(params, steps, s1, peak, terms, xp=jnp):
    """The law after ``steps`` updates from what it reads of the rates: :math:`S_1` at those
    steps (``s1``), the peak rate and the drop terms (the fields of :class:`DropTerms`; a term
    counts for step ``t`` when its ``last < t``). ``xp`` is the array namespace: ``jnp`` (traced,
    differentiable) or ``np`` (concrete parameters: nothing to compile)."""
    L0, A, alpha, B, C, beta, gamma = params
    drop, position, log_lr, k = (xp.asarray(a) for a in terms)
    # log(C eta_k^-gamma): G is evaluated in log space, finite for any rate and exponent
    log_scale = xp.log(C) - gamma * log_lr

    def ld(t, s1_t):  # the drop sum at the steps t (shape (r,)) -> (r,)
        s_k = s1_t[:, None] - position  # S_k(t) for k < t
        pos = (k < t[:, None]) & (s_k > 0)
        log_x = log_scale + xp.log(xp.where(pos, s_k, 1.0))
        g = -xp.expm1(-beta * xp.logaddexp(log_x, 0.0))  # 1 - (C eta^-gamma S + 1)^-beta
        return B * xp.sum(xp.where(pos, drop * g, 0.0), axis=-1)

    steps, s1 = xp.asarray(steps), xp.asarray(s1)
    # a peak other than the pilots' (1) is a rate change at step 0, relaxing like any other
    log_x0 = xp.log(C) - gamma * xp.log(peak) + xp.log(xp.where(s1 > 0, s1, 1.0))
    shift = B * (peak - 1.0) * -xp.expm1(-beta * xp.logaddexp(log_x0, 0.0))
    floor = L0 + xp.where(s1 > 0, shift, 0.0)
    power = _mpl_power(floor, A, alpha, s1, xp)
    if drop.shape[0] == 0:  # no drop anywhere (a constant rate)
        return power
    if xp is np:  # rows of at most 2^20 (step, term) pairs at a time
        rows = max(1, (1 << 20) // drop.shape[0])
        sums = [ld(steps[i : i + rows], s1[i : i + rows]) for i in range(0, steps.size, rows)]
        return power - np.concatenate(sums) if sums else power
    # one step at a time: memory O(terms), never O(steps x terms)
    return power - jax.lax.map(lambda ts: ld(ts[0][None], ts[1][None])[0], (steps, s1))


_mpl_law_compiled = jax.jit(_mpl_law)


TERMS_BUCKET = 1 << 17
"""The fewest drop terms a compiled evaluation is padded to (one step costs microseconds per
thousand terms; one compilation costs about half a second)."""

EXACT_TERMS = 4_000_000
"""Up to this many (requested step, rate change) pairs, predictions sum every drop term."""


def _at_concrete_rates(params, lr: np.ndarray, steps: np.ndarray):
    """The law at ``steps`` for concrete normalised rates: every drop term when there are at
    most :data:`EXACT_TERMS` (step, term) pairs (a final loss, a short curve: the exact sum),
    else grouped between the steps (:func:`drop_terms`). NumPy reads :math:`S_1` at the steps
    and the terms off the rates. Concrete parameters (a prediction) are evaluated by NumPy:
    nothing to compile. Traced ones (a ranking's derivatives of a final loss) go through a
    compiled program that never sees the ``T`` rates: one per size bucket of steps and terms
    (repeated last steps and zero-weight terms pad them to powers of two, and change nothing).
    Terms are padded to at least :data:`TERMS_BUCKET` when the steps are few (at most
    :data:`EXACT_TERMS` pairs in all), so the final losses of candidates up to about 100,000
    steps long share one program."""
    exact = steps.size * drop_steps(lr).size <= EXACT_TERMS
    terms = drop_terms(lr, steps, ratio=None if exact else GROUP_RATIO)
    s1 = np.concatenate([[0.0], np.cumsum(lr)])[steps]
    peak = float(np.max(lr)) if lr.size else 1.0
    if not isinstance(params, Tracer):
        return _mpl_law(np.asarray(params, dtype=np.float64), steps, s1, peak, terms, xp=np)
    last = steps[-1] if steps.size else 0
    steps_p, s1_p = pad_to_bucket(steps, last), pad_to_bucket(s1, s1[-1] if s1.size else 0.0)
    # generous term buckets for a few steps (a final loss); for many, the padding would cost
    least = max(16, min(TERMS_BUCKET, EXACT_TERMS // steps_p.size))
    terms_p = DropTerms(*(pad_to_bucket(np.asarray(x), 0, least) for x in terms))
    return _mpl_law_compiled(params, steps_p, s1_p, peak, terms_p)[: steps.size]


def _mpl_power(L0, A, alpha, s1, xp=jnp):
    """:math:`L_0 + A S_1^{-\\alpha}`, ``inf`` where :math:`S_1 = 0`."""
    safe = xp.where(s1 > 0, s1, 1.0)  # a finite stand-in keeps gradients finite
    return xp.where(s1 > 0, L0 + A * safe ** (-alpha), xp.inf)


def _natural(theta):
    return jnp.exp(theta)


def _residuals(theta, runs):
    params = _natural(theta)
    out = []
    for lr, steps, log_y, terms in runs:
        pred = _mpl_at(params, lr, steps, terms)
        out.append(jnp.log(jnp.maximum(pred, 1e-300)) - log_y)
    return jnp.concatenate(out)


@with_float64
def fit_multi_power_law(
    runs: Sequence,
    *,
    max_steps: int = 300,
    allow_rising: bool = False,
    progress: Callable[[str], None] | None = None,
) -> MultiPowerLaw:
    """Fit the multi-power law to pilot runs (:class:`optsched.loss_models.fitted.PilotRun`),
    skipping step 0.

    All seven parameters are positive (fitted in log space). Starts: :math:`L_0` at 80% of the
    lowest loss, :math:`A` matching the first observed loss, :math:`\\alpha \\in \\{0.3, 0.6\\}`,
    :math:`C \\in \\{0.5, 5\\}`, :math:`B` a tenth of the loss range,
    :math:`\\beta = \\gamma = 0.5`; the best of the four wins. ``progress`` (if given) is
    called with a line of text after the starts and after each polishing round.
    """
    runs = list(runs)
    arrays, unit, y_min, y_max = pilot_arrays(
        runs, normalise=True, skip_first_step=True, allow_rising=allow_rising
    )
    arrays = [(lr, steps, log_y, drop_terms(lr, steps)) for lr, steps, log_y in arrays]
    first = runs[0]
    i = int(np.argmax(first.steps > 0))
    s_first = float(jnp.sum(first.schedule.per_step(1.0)[0][: first.steps[i]])) / unit
    starts = []
    for alpha in (0.3, 0.6):
        for C in (0.5, 5.0):
            A = max(first.loss[i] - 0.8 * y_min, 1e-12) * s_first**alpha
            starts.append(
                [
                    math.log(0.8 * y_min),
                    math.log(A),
                    math.log(alpha),
                    math.log(0.1 * (y_max - y_min) + 1e-12),
                    math.log(C),
                    math.log(0.5),
                    math.log(0.5),
                ]
            )
    theta, cost, J = least_squares_fit(
        _residuals, starts, arrays, max_steps=max_steps, progress=progress
    )
    cov = covariance(J, cost, _natural, theta)
    return MultiPowerLaw(
        _natural(theta),
        unit,
        standard_errors(cov, PARAMETERS),
        math.sqrt(cost / J.shape[0]),
        covariance=cov,
        pilot_peaks=pilot_peaks(runs),
        pilot_floor=pilot_floor(runs),
    )
