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
