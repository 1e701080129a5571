"""The power-law random-feature problem and its conversions to other notations.

A :class:`PowerLawProblem` fixes *what is trained*: a linear model on Gaussian features whose
covariance has eigenvalues ``lambda_k = k**-b`` (``k = 1 .. N``), a target whose power per mode is
``lambda_k (w*_k)**2 = k**-a``, label noise of variance ``sigma**2`` and minibatch size ``m``.
The schedule (learning rate, momentum, batch size over time) is *not* part of the problem.

Notation conversions (``docs/model.md``):

=====================================  =====================  ===========================
source                                 eigenvalue exponent     target exponent
=====================================  =====================  ===========================
this project ``(a, b)``                ``b``                   ``a``
Functional Scaling Laws ``(s, beta)``  ``beta = b``            ``s = (a - 1) / b``
PLRF "4+3 phases" ``(alpha, beta)``    ``2 alpha = b``         ``2 alpha + 2 beta = a``
=====================================  =====================  ===========================
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jax.scipy.special import zeta
from jaxtyping import Array, Float

from .._precision import with_float64
from ..loss_models.base import AbstractLossModel
from ..schedule import Units

__all__ = ["PowerLawProblem", "Width", "format_width", "parse_width"]

Width = int | float  # a positive int, or math.inf

Phase = Literal["easy", "hard", "boundary"]


def parse_width(value: int | float | str, name: str) -> int | float:
    """Parse a number of modes: a positive integer or infinity (``"inf"``)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("inf", "infinity", "infinite"):
            return math.inf
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{name} must be a positive integer or 'inf', got {value!r}") from None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer or 'inf', got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be a positive integer or 'inf', got nan")
    if math.isinf(value):
        if value < 0:
            raise ValueError(f"{name} must be a positive integer or 'inf', got {value}")
        return math.inf
    if value != int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer or 'inf', got {value:g}")
    return int(value)


def format_width(value: int | float) -> int | str:
    """The JSON form of a number of modes: an int, or the string ``"inf"``."""
    return "inf" if math.isinf(value) else int(value)


def _concrete(name: str, value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


class PowerLawProblem(AbstractLossModel):
    r"""Linear regression on power-law Gaussian features, trained by minibatch SGD.

    Modes ``k = 1 .. N`` of the student have eigenvalues and initial errors

    .. math::
        \lambda_k = k^{-b}, \qquad c_{0,k} = (w^*_k)^2 = k^{-(a-b)},
        \qquad \lambda_k c_{0,k} = k^{-a},

    so the initial excess loss is :math:`\sum_{k \le M} k^{-a}`. A teacher with ``M > N`` modes
    has an unlearnable tail that adds the constant :math:`\sum_{N<k\le M} k^{-a}` to the excess
    loss and acts as extra label noise. Excess loss excludes :math:`\sigma^2`.

    Args:
        a: target exponent (task difficulty / source), ``a > 1``.
        b: eigenvalue exponent (capacity), ``b > 1``.
        sigma: label-noise standard deviation, ``sigma >= 0``.
        batch: default minibatch size ``m >= 1`` (real-valued in the model).
        features: student width ``N``: a positive int or ``math.inf``.
        teacher_modes: teacher width ``M >= N`` (default ``N``: no unlearnable tail).

    ``a, b, sigma, batch`` are stored as float64 (numpy) arrays, so that jit-compiled code does
    not recompile for every new value and the values read the same whatever JAX's precision is;
    ``features`` and ``teacher_modes`` are static (they fix shapes).
    Values are validated when they are concrete (not under ``jit``/``vmap`` tracing).
    """

    units: ClassVar[Units] = "model"
    controls: ClassVar[frozenset[str]] = frozenset({"lr", "momentum", "batch"})

    a: Float[Array | np.ndarray, ""]
    b: Float[Array | np.ndarray, ""]
    sigma: Float[Array | np.ndarray, ""]
    batch: Float[Array | np.ndarray, ""]
    features: Width = eqx.field(static=True)
    teacher_modes: Width = eqx.field(static=True)

    def __init__(self, a, b, sigma=0.0, batch=1.0, features=math.inf, teacher_modes=None):
        features = parse_width(features, "features")
        teacher_modes = (
            features if teacher_modes is None else parse_width(teacher_modes, "teacher_modes")
        )
        if teacher_modes < features:
            raise ValueError(
                f"teacher_modes must be >= features (N={format_width(features)}), "
                f"got {format_width(teacher_modes)}"
            )
        if all(_is_concrete(v) for v in (a, b, sigma, batch)):
            a_, b_ = _concrete("a", a), _concrete("b", b)
            s_, m_ = _concrete("sigma", sigma), _concrete("batch", batch)
            if a_ <= 1:
                raise ValueError(f"a must be > 1 (finite initial loss), got a={a_:g}")
            if b_ <= 1:
                raise ValueError(f"b must be > 1 (summable spectrum), got b={b_:g}")
            if s_ < 0:
                raise ValueError(f"sigma must be >= 0, got sigma={s_:g}")
            if m_ < 1:
                raise ValueError(f"batch must be >= 1, got batch={m_:g}")
        self.a = _stored(a)
        self.b = _stored(b)
        self.sigma = _stored(sigma)
        self.batch = _stored(batch)
        self.features = features
        self.teacher_modes = teacher_modes

    # ----------------------------------------------------------------- derived quantities
    @property
    def phase(self) -> Phase:
        """``"easy"`` when ``a > b``, ``"hard"`` when ``a < b`` (``"boundary"`` when equal)."""
        a, b = float(self.a), float(self.b)
        return "easy" if a > b else "hard" if a < b else "boundary"

    @with_float64
    def tail_loss(self) -> Float[Array, ""]:
        r"""Unlearnable excess loss :math:`\sum_{N<k\le M} k^{-a}` of the teacher's extra modes."""
        return _power_sum(self.a, self.features, self.teacher_modes)

    @with_float64
    def initial_loss(self) -> Float[Array, ""]:
        r"""Initial excess loss :math:`\sum_{k \le M} k^{-a}` (the student starts at ``w = 0``)."""
        return _power_sum(self.a, 0, self.teacher_modes)

    # ----------------------------------------------------------------- as a loss model
    @property
    def lr_scale(self) -> float:
        """1: the problem's schedules are in model units."""
        return 1.0

    @with_float64
    def max_stable_lr(self) -> float:
        """The largest constant learning rate at which SGD on this problem does not diverge (at
        the problem's batch size; :func:`~optsched.dynamics.sgd.max_stable_lr`)."""
        from ..dynamics.choice import modes_for
        from ..dynamics.sgd import max_stable_lr

        return float(max_stable_lr(modes_for(self, 1.0), self.batch))

    def default_lr_max(self) -> float:
        """99% of :meth:`max_stable_lr`: the cap ``solve`` uses when none is given."""
        return 0.99 * self.max_stable_lr()

    def objective(self, horizon: int, lr_max: float, *, max_blocks: int = 128):
        """The exact final loss on modes accurate up to intrinsic time ``lr_max * horizon``
        (:class:`~optsched.loss_models.power_law.PowerLawObjective`)."""
        from ..dynamics.choice import modes_for, momentum_method, sgd_method
        from ..loss_models.power_law import PowerLawObjective

        spec = modes_for(self, float(lr_max) * int(horizon))
        return PowerLawObjective(
            spec,
            jnp.asarray(self.batch),
            method=sgd_method(int(horizon), spec.size, max_blocks),
            momentum_method=momentum_method(int(horizon), spec.size, max_blocks),
        )

    @with_float64
    def curve(self, lr) -> Float[Array, " T+1"]:
        """Excess loss after ``0 .. T`` steps of per-step rates ``lr`` at the problem's batch
        size (exact recursion; modes accurate up to ``sum(lr)``, or 1e7 under tracing)."""
        from ..dynamics.choice import modes_for
        from ..dynamics.sgd import step_losses

        lr = jnp.asarray(lr, dtype=float)
        max_time = 1e7 if not _is_concrete(lr) else float(jnp.sum(lr))
        return step_losses(modes_for(self, max_time), lr, jnp.full_like(lr, self.batch))

    def describe(self) -> dict:
        return {"kind": "PowerLawProblem", **self.to_dict()}

    # ----------------------------------------------------------------- other notations
    @classmethod
    def from_fsl(cls, s, beta, **kwargs) -> PowerLawProblem:
        """From Functional-Scaling-Law letters: capacity ``beta = b``, source ``s = (a-1)/b``."""
        s, beta = _concrete("s", s), _concrete("beta", beta)
        return cls(a=1.0 + s * beta, b=beta, **kwargs)

    def to_fsl(self) -> tuple[float, float]:
        """``(s, beta)`` with ``beta = b`` and ``s = (a - 1) / b``."""
        a, b = float(self.a), float(self.b)
        return (a - 1.0) / b, b

    @classmethod
    def from_plrf(cls, alpha, beta, **kwargs) -> PowerLawProblem:
        """From PLRF "4+3 phases" letters: ``b = 2 alpha``, ``a = 2 alpha + 2 beta``."""
        alpha, beta = _concrete("alpha", alpha), _concrete("beta", beta)
        return cls(a=2.0 * alpha + 2.0 * beta, b=2.0 * alpha, **kwargs)

    def to_plrf(self) -> tuple[float, float]:
        """``(alpha, beta)`` with ``alpha = b / 2`` and ``beta = (a - b) / 2``."""
        a, b = float(self.a), float(self.b)
        return b / 2.0, (a - b) / 2.0

    def to_dict(self) -> dict:
        """A JSON-ready description (the ``problem`` entry of a schedule file)."""
        return {
            "a": float(self.a),
            "b": float(self.b),
            "sigma": float(self.sigma),
            "batch": float(self.batch),
            "features": format_width(self.features),
            "teacher_modes": format_width(self.teacher_modes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> PowerLawProblem:
        """Inverse of :meth:`to_dict`; missing optional entries take their defaults."""
        try:
            return cls(
                a=data["a"],
                b=data["b"],
                sigma=data.get("sigma", 0.0),
                batch=data.get("batch", 1.0),
                features=data.get("features", math.inf),
                teacher_modes=data.get("teacher_modes"),
            )
        except KeyError as err:
            raise ValueError(f"problem description lacks the entry {err.args[0]!r}") from None


def _stored(value) -> Any:
    """A concrete value as a float64 numpy scalar array; a traced one as it is."""
    return np.asarray(value, dtype=np.float64) if _is_concrete(value) else value


def _is_concrete(value) -> bool:
    return not isinstance(value, Tracer)


def _power_sum(a, lo: Width, hi: Width) -> Float[Array, ""]:
    r""":math:`\sum_{lo < k \le hi} k^{-a}` via the Hurwitz zeta function (exact and
    differentiable)."""
    a = jnp.asarray(a, dtype=float)
    if hi <= lo:
        return jnp.zeros_like(a)
    upper = zeta(a, lo + 1.0)
    if math.isinf(hi):
        return upper
    return upper - zeta(a, hi + 1.0)
