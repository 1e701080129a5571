"""Shared fixtures. JAX runs with its default precision (float32): optsched must compute in
float64 by itself. Tests that build their own JAX inputs at full precision use ``float64``."""

import os

import pytest

import optsched as o

# the CLI keeps compiled programs in the user's cache folder; tests run in-process must not
# (tests/test_cli.py checks the cache itself in a separate process)
os.environ.setdefault("OPTSCHED_CACHE_DIR", "")

_SESSION_CACHE = "OPTSCHED_TEST_XLA_CACHE"
_OWNS_CACHE = pytest.StashKey[bool]()


def pytest_configure(config):
    """One XLA compilation cache for the session, in a temporary folder its xdist workers share
    (they inherit the variable): a program compiled by one worker, or dropped by
    :func:`_free_compiled_programs`, is read back instead of compiled again."""
    if _SESSION_CACHE not in os.environ:
        import tempfile

        os.environ[_SESSION_CACHE] = tempfile.mkdtemp(prefix="optsched-xla-")
        config.stash[_OWNS_CACHE] = True  # the controller (or a run without xdist)
    import jax

    jax.config.update("jax_compilation_cache_dir", os.environ[_SESSION_CACHE])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def pytest_unconfigure(config):
    if config.stash.get(_OWNS_CACHE, False):
        import shutil

        shutil.rmtree(os.environ.pop(_SESSION_CACHE), ignore_errors=True)


@pytest.fixture
def float64():
    """Build test inputs in float64 (optsched's public functions need no such help)."""
    with o.float64():
        yield


RESIDENT_LIMIT = 0.8
"""GiB of resident memory above which a test worker drops its compiled programs."""


@pytest.fixture(autouse=True)
def _free_compiled_programs():
    """After a test, if the worker holds more than :data:`RESIDENT_LIMIT`, drop JAX's compiled
    programs and hand the freed memory back.

    Each new horizon or shape compiles new programs (about 30 MB a solve). Kept for the whole
    session they grew each worker to 4.2-4.3 GiB (8.5 GiB for the suite at ``-n 2``); dropped
    after each module, to 1.7-1.9 GiB, since the allocator kept the freed pages. Dropped with the
    freed heap returned (``malloc_trim``) after every test, 1.1-1.4 GiB (2.5 GiB), but the suite
    ran 20% longer (557 s against 465 s) recompiling what the next test would have reused. Only
    when a worker passes the limit: 1.2-1.5 GiB (2.7 GiB for the suite) in 478 s. Measured with
    ``OPTSCHED_MEMORY_REPORT`` (below).
    """
    yield
    if _resident_gib() > RESIDENT_LIMIT:
        import jax

        jax.clear_caches()
        _return_freed_memory()


def _resident_gib() -> float:
    """This process's resident memory now (Linux ``/proc``; 0 where it cannot be read)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _return_freed_memory() -> None:
    """Ask glibc to hand freed heap pages back to the system (a no-op elsewhere)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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
