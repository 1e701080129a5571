r"""The one interface every loss model implements, so that one :func:`optsched.solve` serves all.

A *loss model* predicts the loss of a training run from its schedule. Implementations:

* :class:`optsched.PowerLawProblem`: the power-law random-feature model itself (model units,
  learning rate, momentum and batch-size controls);
* :class:`optsched.FittedProblem`: that model fitted to pilot runs (the runs' own units);
* :class:`optsched.MultiPowerLaw`: the multi-power law of Luo et al. (2025);
* :class:`optsched.ConvexBound`: the last-iterate bound for convex Lipschitz problems
  (Defazio et al. 2023; Schaipp et al. 2025).

The solver sees a model only through :meth:`AbstractLossModel.objective`: the model bound to a
horizon and a learning-rate cap, an :class:`AbstractObjective` that maps the values of constant
blocks of controls to the predicted final loss (jit-able and differentiable), and evaluates
baseline families. A model that predicts per-step curves only needs
:meth:`~AbstractLossModel.curve`;
the default objective (:class:`CurveObjective`) expands the blocks to steps and reads its last
value.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._precision import with_float64
from ..schedule import Blocks, MomentumForm, Schedule, Units

__all__ = ["AbstractLossModel", "AbstractObjective", "CurveObjective"]


class AbstractObjective(eqx.Module):
    """A loss model bound to a horizon and cap: what the solver minimises."""

    @abc.abstractmethod
    def final_loss(
        self, values: dict[str, Array], blocks: Blocks, momentum_form: MomentumForm = "ema"
    ) -> Float[Array, ""]:
        """Predicted final loss for block values ``{"lr": (P,), ["momentum"|"batch": (P,)]}``
        on ``blocks`` (padding blocks have length 0). Jit-able and differentiable."""

    @abc.abstractmethod
    def knot_losses(self, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, losses)``: the predicted loss at step 0, the knots after it, and ``T``."""

    def baseline_final_losses(
        self, shapes: np.ndarray, peaks: np.ndarray, lr_min: float = 0.0
    ) -> np.ndarray:
        """Final losses of the per-step rates
        ``lr_min + (peaks[v, p] - lr_min) * shapes[v, t]``, shape ``(V, P)``; a diverged or
        non-finite run gives ``inf``. Default: one vectorised call of :meth:`final_loss` on
        one-step blocks."""
        shapes = np.asarray(shapes, dtype=np.float64)
        T = shapes.shape[1]
        blocks = Blocks(jnp.ones(T), jnp.arange(T))
        out = _vmapped_final(self, jnp.asarray(shapes), jnp.asarray(peaks), lr_min, blocks)
        out = np.asarray(out)
        return np.where(np.isfinite(out), out, np.inf)


@eqx.filter_jit
def _vmapped_final(objective, shapes, peaks, lr_min, blocks):
    def one(shape, peak):
        return objective.final_loss({"lr": lr_min + (peak - lr_min) * shape}, blocks)

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)))(shapes, peaks)


class AbstractLossModel(eqx.Module):
    """A model of the loss of a training schedule.

    Class attributes say what a model supports; :func:`optsched.solve` refuses the rest:

    * ``units``: the units of the schedules it reads and :func:`optsched.solve` returns
      (``"model"`` for the power-law problem, ``"real"`` for models of real runs);
    * ``controls``: the controls it can predict (``{"lr"}``, or also ``"momentum"``,
      ``"batch"``).

    Every model also has ``lr_scale`` (a field or a property): model learning rate per unit of
    the learning rate of its schedules (1 for the power-law problem).
    """

    units: ClassVar[Units] = "real"
    controls: ClassVar[frozenset[str]] = frozenset({"lr"})

    @property
    def phase(self) -> str | None:
        """``"easy"`` or ``"hard"`` where the model has phases (``None`` otherwise)."""
        return None

    def default_lr_max(self) -> float:
        """The learning-rate cap used when none is given (raises where there is no natural
        one)."""
        raise ValueError(f"{type(self).__name__} has no natural learning-rate cap: give lr_max")

    @abc.abstractmethod
    def curve(self, lr: Float[Array, " T"]) -> Float[Array, " T+1"]:
        """Loss after ``0 .. T`` steps of the per-step rates ``lr`` (this model's units;
        jit-able in ``lr``)."""

    def curve_at(self, lr: Float[Array, " T"], steps) -> Array:
        """Loss after ``steps`` updates (default: :meth:`curve` read at ``steps``; models whose
        curve costs more than ``O(T)`` evaluate only the requested steps)."""
        return self.curve(lr)[jnp.asarray(steps)]

    def objective(self, horizon: int, lr_max: float, *, max_blocks: int = 128) -> AbstractObjective:
        """This model bound to ``horizon`` steps, the cap ``lr_max`` and at most ``max_blocks``
        constant blocks (default: the per-step :class:`CurveObjective`)."""
        return CurveObjective(self)

    @with_float64
    def predict(self, schedule: Schedule, steps=None) -> np.ndarray:
        """Predicted loss of ``schedule`` at ``steps`` (default ``0 .. T``)."""
        schedule = _in_units_of(self, schedule)
        lr = schedule.per_step(1.0)[0]
        if steps is None:
            return np.asarray(self.curve(lr))
        return np.asarray(self.curve_at(lr, np.asarray(steps)))

    def extrapolation(self, schedule: Schedule) -> str | None:
        """Why a prediction of ``schedule`` leaves what the pilot runs measured, or ``None``.

        A model fitted to pilot runs records their peak rates (``pilot_peaks``, real units);
        a schedule whose peak lies more than 2% outside that range asks the model for the
        loss's dependence on the peak, which pilots at one peak do not determine."""
        peaks = getattr(self, "pilot_peaks", None)
        if not peaks:
            return None
        # a fitted model reads real rates (its units), so the peak compares as it is
        peak = float(np.max(np.asarray(_in_units_of(self, schedule).lr)))
        lo, hi = peaks
        if 0.98 * lo <= peak <= 1.02 * hi:
            return None
        seen = f"{lo:.3g}" if lo == hi else f"{lo:.3g} to {hi:.3g}"
        return (
            f"the schedule peaks at {peak:.3g}, the pilot runs at {seen}: the prediction "
            "extrapolates in the peak rate; fit on a pilot at that peak to check it"
        )

    def describe(self) -> dict:
        """A JSON-ready description: the model's kind and its values (for files and the CLI)."""
        return {"kind": type(self).__name__}

    def parameters(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The fitted parameters as a vector and their covariance (``None`` when not fitted);
        see :meth:`with_parameters`."""
        raise NotImplementedError(f"{type(self).__name__} has no fitted parameters")

    def curve_at_parameters(self, values, lr, steps) -> Array:
        """:meth:`curve_at` with the parameter vector ``values`` in place of the fitted one
        (differentiable in ``values``: what uncertainty propagation differentiates; the rates
        ``lr`` are concrete)."""
        raise NotImplementedError(f"{type(self).__name__} has no fitted parameters")


def _in_units_of(model: AbstractLossModel, schedule: Schedule) -> Schedule:
    """``schedule`` as ``model`` reads it: as it is when its units are the model's (or unstated),
    converted through the schedule's own ``lr_scale`` (real to model) or the model's (model to
    real) otherwise."""
    if schedule.units is None or schedule.units == model.units:
        return schedule
    if model.units == "model":
        return schedule.to_units("model")
    scale = getattr(model, "lr_scale")  # noqa: B009 - each model defines it, not the base
    return schedule.to_units("real", lr_scale=float(scale))


class CurveObjective(AbstractObjective):
    """The objective of a model that predicts per-step curves: expand the blocks, read the end."""

    model: AbstractLossModel

    def final_loss(self, values, blocks, momentum_form="ema"):
        lr = blocks.per_step(values["lr"])
        # the loss after all T steps alone (O(T) for the bound and the law, not the O(T^2) curve)
        return self.model.curve_at(lr, jnp.array([lr.shape[0]]))[0]

    def knot_losses(self, schedule):
        steps = np.append(np.asarray(schedule.steps), schedule.horizon)
        return steps, self.model.predict(schedule, steps)
