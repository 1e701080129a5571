r"""The power-law random-feature model as an objective: exact final losses of block controls.

:class:`PowerLawObjective` is what :meth:`optsched.PowerLawProblem.objective` and
:meth:`optsched.FittedProblem.objective` hand the solver: the model's modes at one horizon and
cap, and the affine map from model to observed loss,

.. math:: \hat L = L_\infty + s_L\, L^{model}_T(s_\eta\,\eta),

(:math:`s_\eta = s_L = 1`, :math:`L_\infty = 0` for the problem itself). The final loss runs
through the exact dynamics: the closed-form block propagation or the per-step scan for plain
SGD (whichever is faster, :func:`~optsched.dynamics.choice.sgd_method`), and likewise the per-step
moment recursion or its closed-form blocks with momentum
(:func:`~optsched.dynamics.choice.momentum_method`); the gradient of a per-step run comes from
its adjoint recursion (:mod:`optsched.dynamics.adjoint`). Baselines run in vectorised scans over
tiles of variants and peaks (:data:`PEAK_TILE`), one compiled program for every tuning round.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._precision import with_float64
from ..dynamics.base import blown_up
from ..dynamics.momentum import momentum_final_loss, momentum_losses, propagate_momentum_blocks
from ..dynamics.sgd import propagate_blocks, sgd_step, step_final_loss, step_losses
from ..model.spectrum import Spectrum
from ..schedule import knot_blocks
from .base import AbstractObjective

__all__ = ["PowerLawObjective"]


class PowerLawObjective(AbstractObjective):
    """Final loss of the power-law model on fixed modes (see the module docstring).

    Attributes:
        spec: the tracked modes.
        batch: the batch size where the controls have none.
        method: ``"scan"`` or ``"blocks"`` for plain SGD.
        momentum_method: ``"scan"`` or ``"blocks"`` with momentum.
        lr_scale, loss_scale, loss_floor: :math:`s_\\eta, s_L, L_\\infty`.
    """

    spec: Spectrum
    batch: Float[Array, ""]
    method: str = eqx.field(static=True, default="blocks")
    momentum_method: str = eqx.field(static=True, default="scan")
    lr_scale: float = 1.0
    loss_scale: float = 1.0
    loss_floor: float = 0.0

    def _observed(self, model_loss):
        return self.loss_floor + self.loss_scale * model_loss

    def final_loss(self, values, blocks, momentum_form="ema"):
        lr = self.lr_scale * values["lr"]
        m = values.get("batch", jnp.full_like(lr, self.batch))
        # linear (smooth) controls have no closed form per block: they run step by step
        closed_form = blocks.weight_of_step is None
        if "momentum" in values and self.momentum_method == "blocks" and closed_form:
            loss = propagate_momentum_blocks(
                self.spec, lr, values["momentum"], m, blocks.lengths, form=momentum_form
            )[0][-1]
        elif "momentum" in values:
            loss = momentum_final_loss(
                self.spec,
                blocks.per_step(lr),
                blocks.per_step(values["momentum"]),
                blocks.per_step(m),
                form=momentum_form,
            )
        elif self.method == "scan" or not closed_form:
            loss = step_final_loss(self.spec, blocks.per_step(lr), blocks.per_step(m))
        else:
            loss = propagate_blocks(self.spec, lr, m, blocks.lengths)[0][-1]
        return self._observed(loss)

    @with_float64
    def knot_losses(self, schedule):
        steps = np.append(np.asarray(schedule.steps), schedule.horizon)
        # the faster exact method, as for the final loss (a short run needs no closed form)
        method = self.method if schedule.momentum is None else self.momentum_method
        closed_form = schedule.interpolation == "previous" and method == "blocks"
        if not closed_form:
            lr, beta, m = schedule.per_step(self.batch)
            form = None if schedule.momentum is None else schedule.momentum_form
            losses = _per_step_losses(self.spec, self.lr_scale, lr, beta, m, form)
            return steps, self._observed(np.asarray(losses)[steps])
        _, lengths = knot_blocks(schedule)
        knot_lr = self.lr_scale * jnp.asarray(schedule.lr)
        knot_m = (
            jnp.asarray(schedule.batch)
            if schedule.batch is not None
            else jnp.full_like(knot_lr, self.batch)
        )
        if schedule.momentum is not None:
            losses, _ = propagate_momentum_blocks(
                self.spec,
                knot_lr,
                jnp.asarray(schedule.momentum),
                knot_m,
                lengths,
                form=schedule.momentum_form,
            )
        else:
            losses, _ = propagate_blocks(self.spec, knot_lr, knot_m, lengths)
        losses = np.concatenate([[float(self.spec.initial_loss())], np.asarray(losses)])
        return steps, self._observed(losses)

    @with_float64
    def baseline_final_losses(self, shapes, peaks, lr_min=0.0):
        # the glue in NumPy: every call has new shapes, and eager JAX would compile each op
        shapes = np.asarray(shapes, dtype=float)
        peaks = float(self.lr_scale) * np.asarray(peaks, dtype=float)
        floor = float(self.lr_scale) * float(lr_min)
        losses = _tiled(lambda s, p: _peak_scan(self.spec, s, p, floor, self.batch), shapes, peaks)
        spec = self.spec  # in NumPy: eager JAX would compile a program per operation
        w, lam = np.asarray(spec.weight), np.asarray(spec.lam)
        start = float(np.sum(w * lam * np.asarray(spec.target)) + float(spec.offset))
        noise = float(spec.noise)
        bad = blown_up(losses, start, noise, xp=np)
        return np.where(bad, np.inf, self._observed(losses))


@eqx.filter_jit
def _per_step_losses(spec, lr_scale, lr, beta, m, form):
    """Losses ``L_0 .. L_T`` of per-step controls (rates scaled by ``lr_scale``; ``form`` None
    for plain SGD), one compiled program per shape (a solve recomputes several schedules)."""
    if form is None:
        return step_losses(spec, lr_scale * lr, m)
    return momentum_losses(spec, lr_scale * lr, beta, m, form=form)


PEAK_TILE = (8, 12)
"""Baselines run in tiles of this many variants and peaks (the last ones padded), so a tuning's
rounds of different sizes share one compiled scan."""


def _tiled(scan, shapes: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """``scan(shapes_tv, peaks)`` over ``(V, T)`` shapes and ``(V, P)`` peaks, tile by tile of
    :data:`PEAK_TILE` (padding repeats the last variant and peak; its results are dropped)."""
    V, P = peaks.shape
    rows, cols = PEAK_TILE
    Vp, Pp = -(-V // rows) * rows, -(-P // cols) * cols
    shapes = np.concatenate([shapes, np.repeat(shapes[-1:], Vp - V, axis=0)])
    peaks = np.pad(peaks, ((0, Vp - V), (0, Pp - P)), mode="edge")
    out = np.empty((Vp, Pp))
    for i in range(0, Vp, rows):
        shapes_tv = np.ascontiguousarray(shapes[i : i + rows].T)
        for j in range(0, Pp, cols):
            out[i : i + rows, j : j + cols] = scan(shapes_tv, peaks[i : i + rows, j : j + cols])
    return out[:V, :P]


@jax.jit
def _peak_scan(spec, shapes_tv, peaks, floor, batch):
    """Final losses of ``lr_t = floor + (peaks[v, p] - floor) * shapes[v, t]`` for every
    ``(v, p)``, in one scan over ``t`` (memory ``V * P * n``, never ``V * P * T``)."""
    step = jax.vmap(jax.vmap(sgd_step, in_axes=(None, 0, 0, None)), in_axes=(None, 0, 0, None))
    c0 = jnp.broadcast_to(spec.target, peaks.shape + spec.target.shape)

    def body(c, shape_v):
        return step(spec, c, floor + (peaks - floor) * shape_v[:, None], batch), None

    c, _ = jax.lax.scan(body, c0, shapes_tv)
    return spec.loss(c)
