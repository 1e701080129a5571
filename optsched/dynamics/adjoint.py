r"""The final value of a long recursion, differentiated by its adjoint (backward) recursion.

For a recursion :math:`x_{t+1} = f(p, x_t, u_t)`, :math:`t = 0 \dots T-1`, read out as
:math:`J = r(p, x_T)`, reverse mode is the adjoint recursion

.. math::
    \bar x_T = \partial_x r, \qquad
    \bar x_t = (\partial_x f_t)^\top \bar x_{t+1}, \qquad
    \bar u_t = (\partial_u f_t)^\top \bar x_{t+1}, \qquad
    \bar p = \partial_p r + \sum_t (\partial_p f_t)^\top \bar x_{t+1},

with ``f_t`` linearised at the stored state :math:`x_t`. :func:`final_value` runs the state
part as one backward scan whose body is the VJP of a single step in :math:`x` alone (the
residuals are the states; the step is recomputed), recording each :math:`\bar x_{t+1}`; the
input and parameter parts then follow for all steps at once (a ``vmap`` of the step's VJP in
:math:`u` and :math:`p`). Differentiating ``lax.scan`` itself instead saves every intermediate
of every step and carries every cotangent through the loop, where on CPU each extra operation in
a loop body costs about a fixed time per step. Measured on 2 CPU cores
(``benchmarks/bench_dynamics.py``), loss and gradient: SGD 2.3x faster (T = 1e3, N = 500),
momentum 2-3.4x (T = 1e4 .. 1e6, N = inf). A state of more than :data:`SPLIT_LIMIT` entries
(thousands of exact modes) takes every cotangent in the loop instead (1.7x faster than JAX's
own at 1e5 modes). Long runs keep one state per chunk of ``chunk`` steps and recompute each
chunk in the backward pass (memory :math:`O(T/c + c)` states).

The parameter cotangent :math:`\bar p` is computed only when some leaf of ``p`` is being
differentiated (symbolic zeros), so a solver differentiating the controls alone does not pay
for it. Forward mode (``jax.jvp``) is not available through :func:`final_value`: use the plain
scan (e.g. :func:`~optsched.dynamics.sgd.step_losses`) there.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["SPLIT_LIMIT", "STORE_LIMIT", "final_value"]

STORE_LIMIT = 2**23
"""Most state entries (``T * state size``) kept for the backward pass before chunks are
recomputed instead (64 MiB in float64)."""

SPLIT_LIMIT = 4096
"""Largest state (entries) whose input cotangents are taken for all steps at once after the
loop; larger states take them in the loop (measured: at 10^5 exact modes the all-at-once pass
made the gradient 2x slower than JAX's own; at 28 .. 500 modes, and 3 x 49 .. 3 x 61 moments, it
makes it 1.8-3.6x faster)."""


def final_value(
    step: Callable[[Any, Any, Any], Any],
    readout: Callable[[Any, Any], jax.Array],
    params,
    init,
    xs,
    *,
    chunk: int | None = None,
) -> jax.Array:
    """:math:`r(p, x_T)` for :math:`x_{t+1} = \\mathrm{step}(p, x_t, u_t)`, with its adjoint
    (module docstring).

    Args:
        step: ``step(params, x, u) -> x'`` (pure, traceable).
        readout: ``readout(params, x_T) -> scalar``.
        params: a pytree of arrays both see (e.g. a :class:`~optsched.model.spectrum.Spectrum`).
        init: the state :math:`x_0` (a pytree of arrays).
        xs: the per-step inputs :math:`u_t`, a pytree of arrays with leading axis ``T >= 1``.
        chunk: steps per recomputed chunk in the backward pass; ``None`` keeps every state when
            ``T * state size <= STORE_LIMIT`` and uses chunks of about :math:`\\sqrt{T}` steps
            otherwise.
    """
    length = int(jax.tree.leaves(xs)[0].shape[0])
    if length < 1:
        raise ValueError("final_value needs at least one step")
    if chunk is None:
        size = _entries(init)
        chunk = length if length * size <= STORE_LIMIT else math.isqrt(length - 1) + 1
    chunk = max(1, min(int(chunk), length))
    return _final_value(step, readout, chunk, length, params, init, xs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _final_value(step, readout, chunk, length, params, init, xs):
    del chunk, length
    final, _ = jax.lax.scan(lambda x, u: (step(params, x, u), None), init, xs)
    return readout(params, final)


def _entries(tree) -> int:
    """The number of array entries in ``tree`` (a state's size)."""
    return sum(math.prod(jnp.shape(x)) for x in jax.tree.leaves(tree))


def _chunked(xs, chunk: int, length: int):
    """``xs`` as ``(chunks, chunk, ...)`` (the last padded by repeats) and the valid-step mask,
    ``None`` when no padding was needed."""
    chunks = -(-length // chunk)
    pad = chunks * chunk - length

    def split(x):
        if pad:
            x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)], axis=0)
        return x.reshape((chunks, chunk) + x.shape[1:])

    valid = (jnp.arange(chunks * chunk) < length).reshape(chunks, chunk) if pad else None
    return jax.tree.map(split, xs), valid


def _keep(ok, new, old):
    """``new`` where the step is valid, ``old`` on padding (``ok`` is ``None``: no padding)."""
    if ok is None:
        return new
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def _zero_padding(valid, tree):
    """Zero the entries of ``tree`` (leading axis: steps) on padding steps."""
    if valid is None:
        return tree

    def zero(g):
        return jnp.where(valid.reshape(valid.shape + (1,) * (g.ndim - 1)), g, 0.0)

    return jax.tree.map(zero, tree)


def _run_chunk(step, params, start, xs_chunk, valid_chunk):
    """The chunk's states before each of its steps, and the state after it."""

    def body(x, inp):
        u, ok = inp
        return _keep(ok, step(params, x, u), x), x

    return jax.lax.scan(body, start, (xs_chunk, valid_chunk))


def _unwrap(tree):
    """Values of a tree of ``CustomVJPPrimal`` and a marker: ``()`` if any leaf is being
    differentiated, ``None`` if not (a pytree, so it can ride in the residuals)."""
    is_primal = lambda leaf: hasattr(leaf, "perturbed")  # noqa: E731
    values = jax.tree.map(lambda leaf: leaf.value, tree, is_leaf=is_primal)
    perturbed = any(leaf.perturbed for leaf in jax.tree.leaves(tree, is_leaf=is_primal))
    return values, (() if perturbed else None)


def _fwd(step, readout, chunk, length, params, init, xs):
    params, want_params = _unwrap(params)
    init, want_init = _unwrap(init)
    xs, _ = _unwrap(xs)
    if chunk >= length:  # one chunk: keep every state
        xs_c, valid = xs, None
        final, kept = _run_chunk(step, params, init, xs, None)
    else:  # keep each chunk's first state

        def outer(x, inp):
            xs_chunk, valid_chunk = inp
            return _run_chunk(step, params, x, xs_chunk, valid_chunk)[0], x

        xs_c, valid = _chunked(xs, chunk, length)
        final, kept = jax.lax.scan(outer, init, (xs_c, valid))
    residuals = (params, final, kept, xs_c, valid, want_params, want_init)
    return readout(params, final), residuals


def _bwd(step, readout, chunk, length, residuals, ybar):
    params, final, kept, xs_c, valid, want_params, want_init = residuals
    with_params = want_params is not None
    if with_params:
        pbar, xbar = jax.vjp(readout, params, final)[1](ybar)
    else:
        (xbar,) = jax.vjp(lambda x: readout(params, x), final)[1](ybar)
        pbar = None

    def back_chunk(carry, states, xs_chunk, valid_chunk):
        xbar, pbar = carry
        xbar, ubar, pb = _back_chunk(step, params, xbar, states, xs_chunk, valid_chunk, with_params)
        return (xbar, pbar if pb is None else jax.tree.map(jnp.add, pbar, pb)), ubar

    if chunk >= length:  # every state was kept
        (x0bar, pbar), ubar = back_chunk((xbar, pbar), kept, xs_c, None)
        return pbar, (None if want_init is None else x0bar), ubar

    def outer(carry, inp):
        start, xs_chunk, valid_chunk = inp
        states = _run_chunk(step, params, start, xs_chunk, valid_chunk)[1]
        return back_chunk(carry, states, xs_chunk, valid_chunk)

    (x0bar, pbar), ubar_c = jax.lax.scan(outer, (xbar, pbar), (kept, xs_c, valid), reverse=True)
    ubar = jax.tree.map(lambda g: g.reshape((-1,) + g.shape[2:])[:length], ubar_c)
    return pbar, (None if want_init is None else x0bar), ubar


def _back_chunk(step, params, xbar, states, xs_chunk, valid_chunk, with_params: bool):
    """One chunk backwards: the state cotangents step by step (recording the cotangent of each
    step's output), then the input cotangents, and the parameter cotangent summed over the
    chunk's steps, for all steps at once. A large state (over :data:`SPLIT_LIMIT` entries) has
    every cotangent computed in the loop instead: there each step's work outweighs its fixed
    cost, and the all-at-once pass would stream arrays of ``chunk * state`` entries."""
    if _entries(xbar) > SPLIT_LIMIT:
        return _back_chunk_in_loop(step, params, xbar, states, xs_chunk, valid_chunk, with_params)

    def back_step(xbar, inp):
        x, u, ok = inp
        (prev,) = jax.vjp(lambda x: step(params, x, u), x)[1](xbar)
        return _keep(ok, prev, xbar), xbar

    xbar_start, xbar_next = jax.lax.scan(
        back_step, xbar, (states, xs_chunk, valid_chunk), reverse=True
    )
    if with_params:

        def local(x, u, xb):
            return jax.vjp(lambda p, u: step(p, x, u), params, u)[1](xb)

        pbars, ubar = jax.vmap(local)(states, xs_chunk, xbar_next)
        pbar = jax.tree.map(lambda g: jnp.sum(g, axis=0), _zero_padding(valid_chunk, pbars))
    else:

        def local(x, u, xb):
            return jax.vjp(lambda u: step(params, x, u), u)[1](xb)[0]

        ubar, pbar = jax.vmap(local)(states, xs_chunk, xbar_next), None
    return xbar_start, _zero_padding(valid_chunk, ubar), pbar


def _back_chunk_in_loop(step, params, xbar, states, xs_chunk, valid_chunk, with_params: bool):
    """:func:`_back_chunk` with the input and parameter cotangents taken step by step."""
    zero_params = jax.tree.map(jnp.zeros_like, params) if with_params else None

    def back_step(carry, inp):
        xbar, pacc = carry
        x, u, ok = inp
        if with_params:
            pb, prev, ubar = jax.vjp(step, params, x, u)[1](xbar)
            pacc = jax.tree.map(lambda acc, g: acc + _keep(ok, g, jnp.zeros_like(g)), pacc, pb)
        else:
            prev, ubar = jax.vjp(lambda x, u: step(params, x, u), x, u)[1](xbar)
        ubar = _keep(ok, ubar, jax.tree.map(jnp.zeros_like, ubar))
        return (_keep(ok, prev, xbar), pacc), ubar

    (xbar_start, pbar), ubar = jax.lax.scan(
        back_step, (xbar, zero_params), (states, xs_chunk, valid_chunk), reverse=True
    )
    return xbar_start, ubar, pbar


_final_value.defvjp(_fwd, _bwd, symbolic_zeros=True)
