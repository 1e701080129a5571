"""Independent computations side by side, one thread per core.

XLA computes outside Python's interpreter lock, so compiled programs started from different
threads run in parallel. A sequential computation (a Levenberg-Marquardt loop, a recursion over
``T`` steps) keeps one core busy; independent ones (starts of a fit, candidates of a ranking)
can fill the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["cores", "map_on_cores"]

_X = TypeVar("_X")
_Y = TypeVar("_Y")


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def map_on_cores(fn: Callable[[_X], _Y], items: Iterable[_X]) -> list[_Y]:
    """``[fn(x) for x in items]``, one thread per core, each inside its own float64 context
    (JAX's precision context is thread-local). The results, and the first exception raised, are
    those of the plain loop; after an exception (or Ctrl-C) the items not yet started are
    dropped, and the call returns once the running ones end."""
    from ._precision import float64

    items = list(items)

    def one(x: _X) -> _Y:
        with float64():
            return fn(x)

    workers = min(len(items), cores())
    if workers <= 1:
        return [one(x) for x in items]
    pool = ThreadPoolExecutor(workers)
    try:
        return list(pool.map(one, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
