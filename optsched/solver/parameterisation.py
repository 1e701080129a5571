r"""The controls ``solve`` optimises, as unconstrained parameters that satisfy the bounds by design.

Each control set maps parameters :math:`\theta` (one row per control, one column per constant
block) to block values that respect every constraint exactly, and gives the objective
:math:`\log L_T` through the matching dynamics:

* :class:`LearningRate`: :math:`\eta_k = \eta_{min} + (\eta_{max} - \eta_{min})\,\sigma(\theta_k)`;
  plain SGD (with ``decay_only``, the sigmoid becomes :math:`\prod_{j \le k} \sigma(\theta_j)`:
  never rising; ``eta_min`` defaults to 0).
* :class:`LearningRateMomentum`: also :math:`\beta_k = \beta_{max}\,\sigma(\theta'_k)`, EMA or
  heavy-ball momentum.
* :class:`LearningRateBatch`: also
  :math:`m_k = m_{min} + (m_{max} - m_{min})\,\sigma(\phi_k + \nu)`, where the shift
  :math:`\nu(\phi)` solves :math:`\sum_k n_k m_k = D` (the sample budget, ``n_k`` the block
  lengths). :math:`\nu` is found by bisection (optimistix) and differentiated implicitly, so the
  budget holds exactly at every iterate and the gradient is exact.

All share the interface of :class:`AbstractControls`, so the optimiser, the knot refinement and
the never-worse-than-baseline guarantee are written once in :mod:`optsched.solver.solve`; the
loss comes from the model's objective
(:meth:`~optsched.loss_models.base.AbstractLossModel.objective`), so the same controls serve every
loss model that supports them. ``lr_max = None`` means the model's own cap
(:meth:`~optsched.loss_models.base.AbstractLossModel.default_lr_max`).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float

from ..dynamics.momentum import momentum_coefficients
from ..loss_models.base import AbstractObjective
from ..schedule import Blocks, Interpolation, MomentumForm, Schedule, _interpolate

__all__ = ["AbstractControls", "LearningRate", "LearningRateBatch", "LearningRateMomentum"]

LOG_LOSS_OF_DIVERGENCE = 1e3
"""Objective value given to a diverged (non-finite or non-positive) loss: far above any real one."""


def _logit(p, hi: float = 0.97):
    # start below saturation: at the bounds the sigmoid's slope would freeze a block in place
    p = np.clip(np.asarray(p, dtype=float), 1e-6, hi)
    return np.log(p) - np.log1p(-p)


def _at(schedule: Schedule, values, steps) -> np.ndarray:
    """A control of ``schedule`` (its knot ``values``) at ``steps``, by NumPy: a starting point
    needs no compiled kernel (within an ulp of :meth:`~optsched.schedule.Schedule.lr_at`)."""
    return _interpolate(
        np,
        np.asarray(schedule.steps),
        np.asarray(values, dtype=np.float64),
        np.asarray(steps),
        schedule.interpolation,
    )


@eqx.filter_jit
def _values(controls: AbstractControls, theta, blocks: Blocks) -> dict[str, Array]:
    """``controls.values`` compiled as one program (run eagerly, each operation would compile
    on its own)."""
    return controls.values(theta, blocks)


def _safe_log(loss):
    return jnp.where(jnp.isfinite(loss) & (loss > 0), jnp.log(loss), LOG_LOSS_OF_DIVERGENCE)


class AbstractControls(eqx.Module):
    """A set of controls: parameters -> bounded block values -> ``log L_T``."""

    lr_max: eqx.AbstractVar[float | None]
    needs: ClassVar[frozenset[str]] = frozenset({"lr"})
    """The controls a loss model must support for these controls to be solved."""
    momentum_form: ClassVar[MomentumForm] = "ema"

    @abc.abstractmethod
    def values(self, theta: Float[Array, "C P"], blocks: Blocks) -> dict[str, Array]:
        """Block values ``{"lr": ..., ["momentum": ...], ["batch": ...]}``, each ``(P,)``."""

    @abc.abstractmethod
    def initial(
        self, schedule: Schedule, steps: np.ndarray, pad: int, batch: float
    ) -> Float[Array, "C P"]:
        """Parameters whose block values follow ``schedule`` at the block starts ``steps``."""

    def log_final_loss(
        self, theta, objective: AbstractObjective, blocks: Blocks
    ) -> Float[Array, ""]:
        """:math:`\\log L_T` of the controls ``theta`` (a large constant where it diverged)."""
        loss = objective.final_loss(self.values(theta, blocks), blocks, self.momentum_form)
        return _safe_log(loss)

    def _cap(self):
        """The resolved learning-rate cap (``solve`` sets it before optimising)."""
        if self.lr_max is None:
            raise ValueError("the learning-rate cap is not set; solve resolves it first")
        return self.lr_max

    def with_lr_max(self, lr_max: float) -> AbstractControls:
        """These controls with the cap ``lr_max``."""
        return dataclasses.replace(self, lr_max=jnp.asarray(float(lr_max)))

    def _lr_rows(self, rows: int, schedule: Schedule, steps: np.ndarray, pad: int) -> np.ndarray:
        """A ``(rows, pad)`` parameter array whose first row follows ``schedule``'s learning rate
        at ``steps`` (the other rows are left for the subclass)."""
        theta = np.zeros((rows, pad))
        theta[0, : len(steps)] = _logit(_at(schedule, schedule.lr, steps) / float(self._cap()))
        return theta

    def schedule(
        self,
        theta,
        blocks: Blocks,
        steps: np.ndarray,
        horizon: int,
        interpolation: Interpolation = "previous",
    ) -> Schedule:
        """The schedule of ``theta`` on the knots ``steps`` (padding dropped)."""
        k = len(steps)
        vals = {name: np.asarray(v)[:k] for name, v in _values(self, theta, blocks).items()}
        return Schedule(
            steps,
            vals["lr"],
            horizon=horizon,
            interpolation=interpolation,
            momentum_form=self.momentum_form,
            momentum=vals.get("momentum"),
            batch=vals.get("batch"),
        )


class LearningRate(AbstractControls):
    r"""The learning rate alone, :math:`\eta_{min} \le \eta \le \eta_{max}`; plain SGD.

    :math:`\eta_k = \eta_{min} + (\eta_{max} - \eta_{min})\,\sigma(\theta_k)`. With
    ``decay_only`` the rate never rises from one block to the next:
    :math:`\eta_k = \eta_{min} + (\eta_{max} - \eta_{min}) \prod_{j \le k} \sigma(\theta_j)`.
    A loss model fitted on runs that warm up and then only decay (the multi-power law) has seen
    nothing else; searched freely, its optimum can exploit what it never measured (a dip to zero
    and back). The floor ``lr_min`` (default 0) keeps the rates where such a model was measured:
    :func:`~optsched.solve` tunes its baselines under the same floor (they decay to it).
    """

    lr_max: float | None = None
    decay_only: bool = eqx.field(static=True, default=False)
    lr_min: float = 0.0

    def __check_init__(self):
        lo = float(self.lr_min)
        if not (math.isfinite(lo) and lo >= 0):
            raise ValueError(f"lr_min must be a number >= 0, got {self.lr_min!r}")
        if self.lr_max is not None and not lo < float(self.lr_max):
            raise ValueError(f"lr_min ({lo:g}) must be below lr_max ({float(self.lr_max):g})")

    def values(self, theta, blocks):
        span = self._cap() - self.lr_min
        if self.decay_only:
            return {"lr": self.lr_min + span * jnp.exp(jnp.cumsum(jax.nn.log_sigmoid(theta[0])))}
        return {"lr": self.lr_min + span * jax.nn.sigmoid(theta[0])}

    def initial(self, schedule, steps, pad, batch):
        lo = float(self.lr_min)
        # the schedule's rates as fractions of the span above the floor
        frac = (_at(schedule, schedule.lr, steps) - lo) / (float(self._cap()) - lo)
        theta = np.zeros((1, pad))
        if not self.decay_only:
            theta[0, : len(steps)] = _logit(frac)
            return jnp.asarray(theta)
        # the running minimum of the schedule (non-increasing), as ratios of consecutive blocks;
        # a constant stretch starts just below saturation (ratio 0.9999), where it can still move
        frac = np.minimum.accumulate(np.clip(frac, 1e-12, 1.0))
        theta[0, : len(steps)] = _logit(np.concatenate([frac[:1], frac[1:] / frac[:-1]]), hi=0.9999)
        return jnp.asarray(theta)


class LearningRateMomentum(AbstractControls):
    """Learning rate and momentum, :math:`0 \\le \\beta \\le \\beta_{max} < 1`.

    ``form`` is ``"ema"`` (the project's convention) or ``"heavy_ball"`` (optax's trace, where
    the control is :math:`\\mu`).
    """

    lr_max: float | None = None
    beta_max: float = 0.99
    form: MomentumForm = eqx.field(static=True, default="ema")
    beta_start: float = 0.05
    needs: ClassVar[frozenset[str]] = frozenset({"lr", "momentum"})

    def __check_init__(self):
        if not 0.0 < float(self.beta_max) < 1.0:
            raise ValueError(f"beta_max must be in (0, 1), got {self.beta_max}")
        momentum_coefficients(0.0, self.form)

    @property
    def momentum_form(self) -> MomentumForm:  # type: ignore[override]
        return self.form

    def values(self, theta, blocks):
        return {
            "lr": self._cap() * jax.nn.sigmoid(theta[0]),
            "momentum": self.beta_max * jax.nn.sigmoid(theta[1]),
        }

    def initial(self, schedule, steps, pad, batch):
        theta = self._lr_rows(2, schedule, steps, pad)
        beta = (
            _at(schedule, schedule.momentum, steps)
            if schedule.momentum is not None
            else np.full(len(steps), self.beta_start)
        )
        theta[1, : len(steps)] = _logit(beta / self.beta_max)
        return jnp.asarray(theta)


class LearningRateBatch(AbstractControls):
    """Learning rate and batch size under a sample budget :math:`\\sum_t m_t = D` (exact).

    Batch sizes are real-valued in the model (``optsched.batch_size_schedule`` rounds them for
    training, keeping the total).
    """

    lr_max: float | None = None
    budget: float = 1.0
    batch_min: float = 1.0
    batch_max: float | None = None
    needs: ClassVar[frozenset[str]] = frozenset({"lr", "batch"})

    def __check_init__(self):
        if self.batch_max is not None and not 0.0 < float(self.batch_min) < float(self.batch_max):
            raise ValueError(
                f"need 0 < batch_min < batch_max, got {self.batch_min} and {self.batch_max}"
            )

    def _span(self):
        if self.batch_max is None:
            raise ValueError("the batch range is not set; solve resolves it first")
        return self.batch_max - self.batch_min

    def _shift(self, phi, lengths):
        """The shift :math:`\\nu` with :math:`\\sum_k n_k m_k = D` (differentiated implicitly)."""
        span = self._span()
        valid = lengths > 0

        def excess(nu, phi):
            m = self.batch_min + span * jax.nn.sigmoid(phi + nu)
            return jnp.sum(lengths * m) - self.budget

        lo = -jnp.max(jnp.where(valid, phi, -jnp.inf)) - 60.0
        hi = -jnp.min(jnp.where(valid, phi, jnp.inf)) + 60.0
        # excess is increasing in nu: no sign detection (flip=False) needed
        bisection = optx.Bisection(rtol=1e-13, atol=1e-13, flip=False)
        sol = optx.root_find(
            excess,
            bisection,
            jnp.zeros(()),
            phi,
            options={"lower": lo, "upper": hi},
            max_steps=200,
            throw=False,
        )
        return sol.value

    def values(self, theta, blocks):
        nu = self._shift(theta[1], blocks.lengths)
        span = self._span()
        return {
            "lr": self._cap() * jax.nn.sigmoid(theta[0]),
            "batch": self.batch_min + span * jax.nn.sigmoid(theta[1] + nu),
        }

    def initial(self, schedule, steps, pad, batch):
        theta = self._lr_rows(2, schedule, steps, pad)
        m = (
            _at(schedule, schedule.batch, steps)
            if schedule.batch is not None
            else np.full(len(steps), batch)
        )
        frac = (m - self.batch_min) / self._span()
        theta[1, : len(steps)] = _logit(frac, hi=1 - 1e-6)  # nu re-imposes the budget
        return jnp.asarray(theta)
