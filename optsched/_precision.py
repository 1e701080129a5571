"""Double precision where optsched computes, and nowhere else.

The loss dynamics span many decades (eigenvalues ``k**-b`` down to 1e-12, horizons of 1e6 steps),
so every computation of optsched's own runs in float64. It does so inside a *scoped*
``jax.enable_x64`` context, never by switching the process-wide flag: importing optsched leaves
``jax_enable_x64`` as the user set it, and a float32 network stays float32.

* :func:`float64` is the context; use it around your own JAX code that calls optsched's kernels
  inside ``jax.grad`` or ``jax.jit`` (the public functions enter it themselves).
* :func:`with_float64` is the decorator every public entry point of optsched wears.

The exported optax schedules (:meth:`optsched.Schedule.__call__`, :func:`optsched.to_optax`) do
*not* enter the context: they compute in the caller's precision, float32 in a float32 loop.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import jax

__all__ = ["float64", "with_float64"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextlib.contextmanager
def float64() -> Iterator[None]:
    """A context in which JAX creates and computes float64 arrays (thread-local, restored on
    exit, whatever the global ``jax_enable_x64`` setting is)."""
    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # jax < 0.6 keeps the context in jax.experimental
        enable = importlib.import_module("jax.experimental").enable_x64
    with enable(True):
        yield


def with_float64(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` inside :func:`float64` (keeps its name, signature and docstring)."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with float64():
            return fn(*args, **kwargs)

    return wrapper
