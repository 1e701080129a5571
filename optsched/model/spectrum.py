r"""Mode representations: exact modes for small ``N``, log-``k`` quadrature for large or
infinite ``N``.

Every sum over modes in the dynamics has the form :math:`\sum_k f(k)` with ``f`` smooth in
``u = log k``. A :class:`ModeGrid` replaces it by :math:`\sum_i w_i f(k_i)`:

* ``k = 1 .. H`` exactly (``w = 1``; the *head*, where the discreteness of ``k`` matters);
* the rest by the midpoint rule in ``k`` turned into an integral,
  :math:`\sum_{k=H+1}^{K} f(k) \approx \int_{H+1/2}^{K+1/2} f(x)\,dx = \int f(e^u) e^u\,du`,
  evaluated with Gauss-Legendre panels in ``u`` (node ``k_i = e^{u_i}``, weight
  :math:`w_i = e^{u_i} \times` the panel's Gauss weight).

Panels are fine (width ``~1/b``) where the learning front :math:`2\lambda_k F \approx 1` passes
during training (``F = sum_t eta_t`` is the intrinsic time, at most ``max_time``) and grow
geometrically beyond it. Modes with :math:`\lambda_k < \text{tol} / (2 F_{max})` never move by more
than a relative ``tol``; they are *frozen*: their loss :math:`\int x^{-a} dx` is a constant
``offset`` of the excess loss, which also acts as label noise in the SGD noise term (exactly like
the unlearnable modes of a wider teacher). The relative error this adds to the loss is ``<= 2 tol``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jaxtyping import Array, Float

from .._precision import with_float64
from .problem import PowerLawProblem, Width, format_width

__all__ = ["GridNodes", "ModeGrid", "Spectrum", "grid_nodes", "mode_grid", "spectrum"]

EXACT_MAX_MODES = 128
"""``method="auto"`` keeps every mode exactly up to this width, and uses quadrature above it."""


def _as_tuple(x) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(x, dtype=float).ravel())


class ModeGrid(eqx.Module):
    """Positions ``k_i`` and weights ``w_i`` of the modes that are tracked.

    Attributes:
        k: mode indices (real-valued at quadrature nodes), shape ``(n,)``.
        weight: multiplicity of each tracked node, shape ``(n,)``; 1 for exact modes.
        frozen_from: the continuum edge ``x`` above which modes are frozen (``N + 1/2`` or more
            when nothing is frozen).
        features: the student width ``N`` this grid represents.
        max_time: the largest intrinsic time ``sum_t eta_t`` the grid is accurate for.
    """

    k: tuple[float, ...] = eqx.field(static=True, converter=_as_tuple)
    weight: tuple[float, ...] = eqx.field(static=True, converter=_as_tuple)
    frozen_from: float = eqx.field(static=True)
    features: Width = eqx.field(static=True)
    max_time: float = eqx.field(static=True)

    @property
    def size(self) -> int:
        return len(self.k)

    @property
    def exact(self) -> bool:
        return self.size == self.features and all(w == 1.0 for w in self.weight)


class GridNodes(eqx.Module):
    """A :class:`ModeGrid`'s nodes as arrays: traced under ``jit``, where the grid's fields are
    static. One compiled program then serves every grid of the same (padded) size, as a fit
    needs when it rebuilds its grid around a new estimate of ``b``.

    The grid's ``max_time`` is not kept (it would make every grid a new program): a spectrum on
    nodes has ``max_time = inf``, and the range the nodes are accurate for is the caller's to
    respect (fits lay theirs out for ten times the runs' intrinsic time).

    Attributes:
        k, weight: the nodes and their multiplicities, shape ``(n,)`` (padding: weight 0).
        frozen_from: the grid's continuum edge, shape ``()``.
        features: as in the grid (static).
    """

    k: Float[Array | np.ndarray, " n"]
    weight: Float[Array | np.ndarray, " n"]
    frozen_from: Float[Array | np.ndarray, ""]
    features: Width = eqx.field(static=True)


def grid_nodes(grid: ModeGrid, size: int | None = None) -> GridNodes:
    """``grid`` as :class:`GridNodes`, padded to ``size`` nodes (default: its own size).

    Padding repeats the last node with weight 0: it adds nothing to the loss or to the noise
    term, and its error stays finite whenever the last real mode's does."""
    n = grid.size if size is None else int(size)
    if n < grid.size:
        raise ValueError(f"cannot pad a grid of {grid.size} nodes to {n}")
    k = np.asarray(grid.k + (grid.k[-1],) * (n - grid.size))
    weight = np.asarray(grid.weight + (0.0,) * (n - grid.size))
    return GridNodes(k, weight, np.asarray(grid.frozen_from), grid.features)


def _exact_grid(features: int) -> ModeGrid:
    k = np.arange(1, features + 1, dtype=float)
    return ModeGrid(k, np.ones_like(k), features + 0.5, features, math.inf)


def mode_grid(
    features: Width,
    *,
    b: float,
    max_time: float = 1e7,
    method: str = "auto",
    head: int = 16,
    order: int = 3,
    panel_width: float | None = None,
    tol: float = 1e-7,
) -> ModeGrid:
    r"""Choose the tracked modes for a student of width ``features``.

    Args:
        features: student width ``N`` (int or ``math.inf``).
        b: eigenvalue exponent; sets where modes learn (the grid depends on ``b`` only through
            its layout, so one grid serves problems with the same or larger ``b``).
        max_time: the largest intrinsic time :math:`F = \sum_t \eta_t` to be simulated.
        method: ``"exact"`` (all ``N`` modes), ``"quadrature"``, or ``"auto"`` (exact when
            ``N <= EXACT_MAX_MODES``).
        head: number of leading modes kept exactly in the quadrature.
        order: Gauss-Legendre nodes per panel.
        panel_width: width of the fine panels in ``u = log k`` (default ``min(1, 2/b)``).
        tol: relative change below which a mode counts as frozen.
    """
    if method not in ("auto", "exact", "quadrature"):
        raise ValueError(f"method must be 'auto', 'exact' or 'quadrature', got {method!r}")
    if not (max_time > 0 and math.isfinite(max_time)):
        raise ValueError(f"max_time must be positive and finite, got {max_time}")
    if method == "exact" or (method == "auto" and features <= EXACT_MAX_MODES):
        if math.isinf(features):
            raise ValueError("exact modes need a finite width; use method='quadrature' for N=inf")
        return _exact_grid(int(features))
    if features <= head + order:
        return _exact_grid(int(features))

    b = float(b)
    width = min(1.0, 2.0 / b) if panel_width is None else float(panel_width)
    u_lo = math.log(head + 0.5)
    u_top = math.log(features + 0.5)  # inf for an infinite student
    u_front = math.log(2.0 * max_time) / b + 3.0 / b  # past the learning front at F = max_time
    u_cut = math.log(2.0 * max_time / tol) / b  # below lambda = tol / (2 F): frozen
    u_hi = min(u_top, max(u_cut, u_lo + width))

    edges = [u_lo]
    step = width
    while edges[-1] < u_hi - 1e-12:
        if edges[-1] >= u_front:
            step *= 2.0
        edges.append(min(edges[-1] + step, u_hi))
    gx, gw = np.polynomial.legendre.leggauss(order)
    us, ws = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        half = 0.5 * (hi - lo)
        us.append(lo + half * (gx + 1.0))
        ws.append(half * gw)
    u = np.concatenate(us)
    k_tail = np.exp(u)
    w_tail = np.concatenate(ws) * k_tail
    k = np.concatenate([np.arange(1, head + 1, dtype=float), k_tail])
    w = np.concatenate([np.ones(head), w_tail])
    return ModeGrid(k, w, float(math.exp(u_hi)), features, float(max_time))


class Spectrum(eqx.Module):
    r"""The tracked modes of a problem, ready for the dynamics.

    The excess loss of per-mode errors ``c`` is
    :math:`L = \sum_i w_i \lambda_i c_i + \text{offset}` and the SGD noise term sees
    :math:`L_{tracked} + \text{noise}` with :math:`\text{noise} = \sigma^2 + \text{offset}`.

    Attributes:
        lam: eigenvalues :math:`\lambda_i = k_i^{-b}`, shape ``(n,)``.
        target: initial errors :math:`c_{0,i} = (w^*_i)^2 = k_i^{-(a-b)}`, shape ``(n,)``.
        weight: node multiplicities :math:`w_i`, shape ``(n,)``.
        offset: constant excess loss of untracked modes (teacher tail and frozen modes).
        noise: :math:`\sigma^2 + \text{offset}`.
        max_time: the intrinsic time up to which the frozen-mode approximation holds.
    """

    lam: Float[Array, " n"]
    target: Float[Array, " n"]
    weight: Float[Array, " n"]
    offset: Float[Array, ""]
    noise: Float[Array, ""]
    max_time: float = eqx.field(static=True)

    @property
    def size(self) -> int:
        return int(self.lam.shape[0])

    @with_float64
    def loss(self, c: Float[Array, "... n"]) -> Float[Array, "..."]:
        """Excess loss of per-mode errors ``c`` (any leading batch shape)."""
        return jnp.sum(self.weight * self.lam * c, axis=-1) + self.offset

    @with_float64
    def initial_loss(self) -> Float[Array, ""]:
        return self.loss(self.target)


@with_float64
def spectrum(
    problem: PowerLawProblem,
    grid: ModeGrid | GridNodes | None = None,
    *,
    max_time: float = 1e7,
    **kwargs,
) -> Spectrum:
    r"""The :class:`Spectrum` of ``problem`` on ``grid`` (built with :func:`mode_grid` if absent).

    Traceable in ``problem.a, b, sigma`` (a :class:`ModeGrid` is static), so it can be used under
    ``jax.vmap`` over problems that share one grid; on :class:`GridNodes` traceable in the nodes
    too.
    """
    if grid is None:
        grid = mode_grid(problem.features, b=float(problem.b), max_time=max_time, **kwargs)
    if grid.features != problem.features:
        raise ValueError(
            f"grid built for N={format_width(grid.features)} used with a problem of "
            f"N={format_width(problem.features)}"
        )
    a, b = problem.a, problem.b
    # concrete inputs (every solve) in NumPy: eager JAX would compile each operation per shape
    traced = any(isinstance(x, Tracer) for x in (a, b, problem.sigma, grid.k))
    xp = jnp if traced else np
    if not traced:
        a, b = float(a), float(b)
    k = xp.asarray(grid.k, dtype=float)
    lam = jnp.asarray(k ** (-b))
    target = jnp.asarray(k ** (b - a))
    upper = problem.features + 0.5
    if isinstance(grid, GridNodes) or grid.frozen_from < upper:  # (at N + 1/2 the term is 0)
        # integral of x^-a from the last tracked node's edge to N + 1/2 (midpoint-rule continuum)
        top = 0.0 if math.isinf(upper) else upper ** (1.0 - a)
        frozen = (xp.asarray(grid.frozen_from, dtype=float) ** (1.0 - a) - top) / (a - 1.0)
    else:
        frozen = xp.zeros_like(a)
    offset = frozen + problem.tail_loss()
    return Spectrum(
        lam=lam,
        target=target,
        weight=jnp.asarray(grid.weight),
        offset=jnp.asarray(offset),
        noise=jnp.asarray(problem.sigma**2 + offset),
        max_time=grid.max_time if isinstance(grid, ModeGrid) else math.inf,
    )
