"""Shared fixtures. JAX runs with its default precision (float32): optsched must compute in
float64 by itself. Tests that build their own JAX inputs at full precision use ``float64``."""

import pytest

import optsched as o


@pytest.fixture
def float64():
    """Build test inputs in float64 (optsched's public functions need no such help)."""
    with o.float64():
        yield
