"""Several hosts: join a multi-process JAX run and gather Python results across its processes.

:func:`optsched.solve_many` (and the sweeps built on it: phase diagrams, the paper reproduction)
splits its solves over the processes of a multi-process JAX run: with ``P`` processes, process
``p`` solves problems ``p, p + P, p + 2P, ...`` on its own devices (sharded over them when it has
several), then every process receives every solution in input order. No code changes: the same
script runs on each host after :func:`initialize`.

Recipe (two hosts; the coordinator is process 0's address and a free port)::

    # host 0
    OPTSCHED_COORDINATOR=10.0.0.1:12355 OPTSCHED_NUM_PROCESSES=2 OPTSCHED_PROCESS_ID=0 \\
        python sweep.py
    # host 1
    OPTSCHED_COORDINATOR=10.0.0.1:12355 OPTSCHED_NUM_PROCESSES=2 OPTSCHED_PROCESS_ID=1 \\
        python sweep.py

where ``sweep.py`` calls :func:`initialize` before any other JAX work, then ``solve_many``. On
clusters that JAX detects by itself (SLURM, Open MPI, TPU pods) the variables can be left out.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import jax
import numpy as np


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Join a multi-process JAX run (:func:`jax.distributed.initialize`).

    Arguments left ``None`` are read from ``OPTSCHED_COORDINATOR`` (``host:port`` of process 0),
    ``OPTSCHED_NUM_PROCESSES`` and ``OPTSCHED_PROCESS_ID``; where those are unset too, JAX's own
    cluster detection decides. Cross-process collectives on the CPU backend use gloo (set here, so
    CPU-only hosts work). Call it once per process, before any other JAX computation.

    Raises:
        ValueError: a process count or id that is not an integer, or an id outside
            ``[0, num_processes)``.
    """
    coordinator_address = coordinator_address or os.environ.get("OPTSCHED_COORDINATOR")
    num_processes = _integer("OPTSCHED_NUM_PROCESSES", num_processes)
    process_id = _integer("OPTSCHED_PROCESS_ID", process_id)
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"the number of processes must be at least 1, got {num_processes}")
    if num_processes is not None and process_id is not None:
        if not 0 <= process_id < num_processes:
            raise ValueError(f"process id {process_id} is outside [0, {num_processes})")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )


def _integer(name: str, given: int | None) -> int | None:
    """``given``, else the environment variable ``name`` as an integer, else ``None``."""
    text = os.environ.get(name)
    if given is not None or text is None:
        return given
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None


def share(count: int) -> range:
    """The items of ``range(count)`` this process handles: ``p, p + P, ...`` for process ``p`` of
    ``P`` (all of them in a single-process run). Interleaving spreads cheap and costly items of
    an ordered sweep evenly."""
    return range(jax.process_index(), count, jax.process_count())


def allgather(obj: Any) -> list[Any]:
    """Every process's ``obj``, in process order (``[obj]`` in a single-process run).

    ``obj`` is pickled (it may be any picklable value: solutions, arrays, dictionaries), padded to
    the longest payload and exchanged with one
    :func:`jax.experimental.multihost_utils.process_allgather` of bytes; all processes must call
    it together.
    """
    if jax.process_count() == 1:
        return [obj]
    from jax.experimental import multihost_utils

    payload = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([payload.size], np.int32)))
    buffer = np.zeros(int(sizes.max()), dtype=np.uint8)
    buffer[: payload.size] = payload
    every = np.asarray(multihost_utils.process_allgather(buffer))
    return [pickle.loads(every[p, : int(n)].tobytes()) for p, n in enumerate(sizes.ravel())]
