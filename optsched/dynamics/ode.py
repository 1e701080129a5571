r"""The continuous-time limit of the SGD recursion, solved with diffrax.

Reading step ``t`` as the time interval :math:`[t, t+1)`, the per-step recursion
:math:`c' = d\,c + f` (:math:`1 - d = 2\eta\lambda - (1 + 1/m)\eta^2\lambda^2`,
:math:`f = \frac{\eta^2}{m}\lambda(L_{tracked} + \text{noise})`) becomes the modified equation

.. math::
    \frac{dc_k}{d\tau} = -\rho_k c_k + \frac{\rho_k}{1 - d_k} f_k, \qquad \rho_k = -\log d_k,

which reproduces each mode's per-step decay :math:`d_k` and the recursion's fixed point exactly
(for frozen ``f``); for small :math:`\eta\lambda` it is the familiar
:math:`dc/d\tau = -2\eta\lambda c + \frac{\eta^2}{m}\lambda(L + \sigma^2)`.

It is stiff (the :math:`\lambda_k` span many decades), so it is solved with an implicit method
(Kvaerno5) in log time :math:`s = \log(1 + \tau)`, where power laws are smooth:
:math:`dc/ds = (1 + \tau)\, dc/d\tau`. Jumps of a piecewise-constant schedule are passed to the
step-size controller so that no step straddles one. The control at time :math:`\tau` is the knot
schedule read through :func:`~optsched.schedule.expand`: at :math:`\lfloor\tau\rfloor` for
``"previous"``, at :math:`\tau - 1/2` (the interval's midpoint) for ``"linear"``.

What the ODE misses is the within-step feedback of the loss on the noise term; it agrees with the
recursion to well under 1% when :math:`\eta\lambda_1 \le 0.05`.
"""

from __future__ import annotations

import diffrax
import jax.numpy as jnp
import numpy as np

from ..model.spectrum import Spectrum
from ..schedule import Schedule, expand
from .base import AbstractDynamics, Trajectory, divergence_flag

__all__ = ["ContinuousTime"]


def _control(schedule: Schedule, values, tau, default):
    if values is None:
        return jnp.asarray(default, dtype=float)
    t = tau if schedule.interpolation == "previous" else jnp.maximum(tau - 0.5, 0.0)
    return expand(schedule.steps, values, t, schedule.interpolation)


class ContinuousTime(AbstractDynamics):
    """Continuous-time (small learning rate) SGD dynamics, integrated with diffrax.

    Attributes:
        rtol, atol: tolerances of the PID step-size controller.
        save_points: number of log-spaced steps at which the loss is reported.
        max_steps: cap on solver steps (a run that needs more is reported as failed).
    """

    rtol: float = 1e-7
    atol: float = 1e-10
    save_points: int = 64
    max_steps: int = 100_000

    def _loss_curve(self, spectrum: Spectrum, schedule: Schedule, batch) -> Trajectory:
        T = schedule.horizon
        lam, w = spectrum.lam, spectrum.weight

        def field(s, c, args):
            tau = jnp.expm1(s)
            lr = _control(schedule, schedule.lr, tau, 0.0)
            m = _control(schedule, schedule.batch, tau, batch)
            x = 2.0 * lr * lam - (1.0 + 1.0 / m) * (lr * lam) ** 2  # 1 - d
            small = jnp.abs(x) < 1e-8
            safe_x = jnp.where(small, 1.0, x)
            rho = jnp.where(small, x + 0.5 * x**2, -jnp.log1p(-safe_x))
            gain = jnp.where(small, 1.0 + 0.5 * x, rho / safe_x)
            forcing = (lr**2 / m) * lam * (jnp.sum(w * lam * c) + spectrum.noise)
            return (1.0 + tau) * (gain * forcing - rho * c)

        save_steps = np.unique(
            np.concatenate([[0], np.round(np.geomspace(1, T, self.save_points)), [T]])
        ).astype(np.int64)
        ts = np.log1p(save_steps.astype(float))
        controller = diffrax.PIDController(rtol=self.rtol, atol=self.atol)
        if schedule.interpolation == "previous" and schedule.steps.shape[0] > 1:
            jumps = jnp.log1p(schedule.steps[1:].astype(float))
            controller = diffrax.ClipStepSizeController(controller, jump_ts=jumps)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Kvaerno5(),
            t0=0.0,
            t1=float(ts[-1]),
            dt0=None,
            y0=spectrum.target,
            saveat=diffrax.SaveAt(ts=jnp.asarray(ts), fn=lambda s, c, args: spectrum.loss(c)),
            stepsize_controller=controller,
            max_steps=self.max_steps,
            throw=False,
        )
        losses = jnp.asarray(sol.ys)
        failed = sol.result != diffrax.RESULTS.successful
        return Trajectory(
            jnp.asarray(save_steps), losses, divergence_flag(losses, spectrum.noise) | failed
        )
