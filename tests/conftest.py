"""Shared fixtures. JAX runs with its default precision (float32): optsched must compute in
float64 by itself. Tests that build their own JAX inputs at full precision use ``float64``."""

import os

import pytest

import optsched as o

# the CLI keeps compiled programs in the user's cache folder; tests run in-process must not
# (tests/test_cli.py checks the cache itself in a separate process)
os.environ.setdefault("OPTSCHED_CACHE_DIR", "")


@pytest.fixture
def float64():
    """Build test inputs in float64 (optsched's public functions need no such help)."""
    with o.float64():
        yield


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module: a worker that kept every program of
    the whole suite grew past 3 GB (the module boundary is where they stop being reused)."""
    yield
    import jax

    jax.clear_caches()


_PEAKS: list[tuple[float, str]] = []


def pytest_runtest_teardown(item):
    """With OPTSCHED_MEMORY_REPORT set, note how much each test raised this worker's peak
    resident memory (``ru_maxrss``), to find what takes the memory."""
    if not os.environ.get("OPTSCHED_MEMORY_REPORT"):
        return
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (Linux: KiB)
    last = _PEAKS[-1][0] if _PEAKS else 0.0
    if peak > last:
        _PEAKS.append((peak, item.nodeid))


def pytest_sessionfinish(session):
    if os.environ.get("OPTSCHED_MEMORY_REPORT") and _PEAKS:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        path = os.path.join(os.environ["OPTSCHED_MEMORY_REPORT"], f"memory-{worker}.txt")
        with open(path, "w") as f:
            prev = 0.0
            for peak, node in _PEAKS:
                f.write(f"{peak:.2f} GiB (+{peak - prev:.2f}) {node}\n")
                prev = peak
