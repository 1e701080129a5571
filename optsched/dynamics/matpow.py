r"""``y = M^n x`` for a symmetric positive semi-definite ``M``, with a stable reverse-mode rule.

Forward: :math:`M = Q\,\mathrm{diag}(\mu)\,Q^\top` (``eigh``) and
:math:`y = Q\,(\mu^n \circ Q^\top x)`.

Backward (Daleckii-Krein): for :math:`f(\mu) = \mu^n`,

.. math::
    \bar M = Q \big(F \circ (\bar a\, b^\top)\big) Q^\top, \qquad
    \bar x = Q (\mu^n \circ \bar a), \qquad \bar a = Q^\top \bar y, \ b = Q^\top x,

with the divided differences :math:`F_{ij} = (\mu_i^n - \mu_j^n)/(\mu_i - \mu_j)` and
:math:`F_{ii} = n \mu_i^{n-1}`. Computing ``F`` in a cancellation-free form keeps the gradient
finite and accurate when eigenvalues cluster or coincide (e.g. many slow modes with
:math:`\mu \approx 1`, or ``M = I`` when the learning rate is 0), where differentiating through
``eigh`` itself would divide by :math:`\mu_i - \mu_j \approx 0`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["sym_power_apply", "power_divided_differences"]


def power_divided_differences(mu, n):
    r"""The matrix :math:`F_{ij} = (\mu_i^n - \mu_j^n) / (\mu_i - \mu_j)` (its limit on ties).

    Needs ``mu >= 0``.

    Far apart (relative gap > 1e-3) the quotient is computed directly; close together it is
    :math:`\mu_{max}^{n-1} (1 - r^n)/(1 - r)` with :math:`r = \mu_{min}/\mu_{max}` evaluated
    through ``expm1``/``log1p``, which has no cancellation.
    """
    hi = jnp.maximum(mu[:, None], mu[None, :])
    lo = jnp.minimum(mu[:, None], mu[None, :])
    gap = hi - lo
    pn = mu**n
    far = gap > 1e-3 * hi
    direct = (pn[:, None] - pn[None, :]) / jnp.where(far, mu[:, None] - mu[None, :], 1.0)
    safe_hi = jnp.where(hi > 0, hi, 1.0)
    log_r = jnp.log1p(-jnp.where(far, 0.0, gap) / safe_hi)  # log(lo/hi) <= 0
    tiny = log_r > -1e-300
    ratio = jnp.where(tiny, n, jnp.expm1(n * log_r) / jnp.where(tiny, -1.0, jnp.expm1(log_r)))
    near = jnp.where(hi > 0, safe_hi ** (n - 1.0) * ratio, jnp.where(n == 1.0, 1.0, 0.0))
    return jnp.where(far, direct, near)


@jax.custom_vjp
def sym_power_apply(M, n, x):
    """``M^n @ x`` for symmetric PSD ``M`` of shape ``(d, d)``, real ``n >= 0``, ``x`` of shape
    ``(d,)``."""
    y, _ = _forward(M, n, x)
    return y


def _forward(M, n, x):
    mu, Q = jnp.linalg.eigh(M)
    mu = jnp.maximum(mu, 0.0)  # PSD up to rounding
    b = Q.T @ x
    y = Q @ (mu**n * b)
    return y, (mu, Q, b, n)


def _fwd(M, n, x):
    y, res = _forward(M, n, x)
    return y, res


def _bwd(res, ybar):
    mu, Q, b, n = res
    abar = Q.T @ ybar
    F = power_divided_differences(mu, n)
    inner = F * (abar[:, None] * b[None, :])
    Mbar = Q @ inner @ Q.T
    Mbar = 0.5 * (Mbar + Mbar.T)
    xbar = Q @ (mu**n * abar)
    return Mbar, jnp.zeros_like(n), xbar


sym_power_apply.defvjp(_fwd, _bwd)
