r"""A least-squares solver that also stops when its progress stalls.

Fits of loss models to pilot runs often leave one direction of the parameters nearly flat (an
exponent drifting with its amplitude): a Gauss-Newton solver (Levenberg-Marquardt, dogleg)
then crawls along it for hundreds of steps, each lowering the sum of squares by digits nobody
reads, and its own convergence test (on the step in the parameters) never fires.
:class:`StopWhenStalled` wraps such a solver and also stops it once the sum of squares
:math:`S_k` at its accepted iterate fell by less than ``tol`` times its value over the last
``window`` steps,

.. math::
    S_{k - w} - S_k \le \mathrm{tol}\; S_k .

With ``tol`` :math:`= \Delta\chi^2 / n` (``n`` residuals) the parameters still move by about
:math:`\sqrt{\Delta\chi^2}` standard errors per window or less. It reads the sum of squares from
the wrapped solver's state (the residual at its last accepted iterate, which every
``optimistix`` Gauss-Newton solver keeps), so it costs no extra evaluation; wrapped around a
solver whose state has none, it only ever stops where that solver does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx

__all__ = ["StopWhenStalled"]


class StopWhenStalled(optx.AbstractLeastSquaresSolver):
    """``solver``, stopped also when its sum of squares stalls (module docstring).

    Attributes:
        solver: an ``optimistix`` Gauss-Newton solver (``LevenbergMarquardt``, ``Dogleg``, ...).
        tol: the relative fall of the sum of squares over ``window`` steps below which it stops.
        window: steps over which the fall is measured.
    """

    solver: Any
    tol: Any
    window: int = eqx.field(static=True)
    # the wrapped solver's tolerances (optimistix solvers declare them)
    rtol: float
    atol: float
    norm: Callable

    def __init__(self, solver, tol, window: int):
        self.solver = solver
        self.tol = tol
        self.window = window
        self.rtol, self.atol, self.norm = solver.rtol, solver.atol, solver.norm

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        inner = self.solver.init(fn, y, args, options, f_struct, aux_struct, tags)
        # the sums of squares of the last window + 1 steps (a ring), and the steps taken
        history = jnp.full(self.window + 1, jnp.inf, dtype=jnp.result_type(float))
        return inner, history, jnp.array(0)

    def step(self, fn, y, args, options, state, tags):
        inner, history, k = state
        y, inner, aux = self.solver.step(fn, y, args, options, inner, tags)
        residual = getattr(getattr(inner, "f_info", None), "residual", None)
        # a solver that keeps no residual (not Gauss-Newton) never counts as stalled
        cost = jnp.nan if residual is None else jnp.sum(residual**2)
        history = history.at[k % (self.window + 1)].set(cost)
        return y, (inner, history, k + 1), aux

    def terminate(self, fn, y, args, options, state, tags):
        inner, history, k = state
        done, result = self.solver.terminate(fn, y, args, options, inner, tags)
        now = history[(k - 1) % (self.window + 1)]
        before = history[k % (self.window + 1)]  # the oldest kept: `window` steps earlier
        stalled = (k > self.window) & (before - now <= self.tol * now)
        return done | stalled, result

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return self.solver.postprocess(fn, y, aux, args, options, state[0], tags, result)
