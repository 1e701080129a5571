"""Schedules on knots: the one expansion rule and its validation."""

import numpy as np
import pytest

from optsched import Schedule
from optsched.schedule import expand


def test_previous_holds_each_knot_until_the_next():
    v = expand(np.array([0, 3, 7]), np.array([1.0, 2.0, 3.0]), np.arange(10), "previous")
    assert np.array_equal(np.asarray(v), [1, 1, 1, 2, 2, 2, 2, 3, 3, 3])


def test_linear_interpolates_and_holds_after_the_horizon():
    v = expand(np.array([0, 4]), np.array([1.0, 0.0]), np.arange(7), "linear")
    assert np.allclose(np.asarray(v), [1, 0.75, 0.5, 0.25, 0, 0, 0])


@pytest.mark.parametrize(
    "steps, lr, horizon, match",
    [
        ([1, 9], [0.1, 0.1], 10, "step 0"),
        ([0, 8], [0.1, 0.1], 10, "T-1"),
        ([0, 5, 5, 9], [0.1] * 4, 10, "increasing"),
        ([0, 9], [0.1], 10, "one value per knot"),
        ([0, 9], [0.1, -0.2], 10, "lr must be >= 0"),
        ([0, 9], [0.1, float("nan")], 10, "finite"),
        ([0, 9], [0.1, 0.1], 0, "horizon"),
    ],
)
def test_bad_schedules_raise(steps, lr, horizon, match):
    with pytest.raises(ValueError, match=match):
        Schedule(steps, lr, horizon=horizon)


def test_momentum_must_be_below_one_and_batch_at_least_one():
    with pytest.raises(ValueError, match="momentum"):
        Schedule([0, 9], [0.1, 0.1], momentum=[0.5, 1.0])
    with pytest.raises(ValueError, match="batch"):
        Schedule([0, 9], [0.1, 0.1], batch=[0.5, 4])


def test_per_step_and_intrinsic_time():
    s = Schedule([0, 2, 4], [1.0, 0.5, 0.0], interpolation="previous", batch=[1, 2, 3])
    lr, beta, m = s.per_step(7.0)
    assert np.allclose(lr, [1, 1, 0.5, 0.5, 0]) and np.allclose(beta, 0)
    assert np.allclose(m, [1, 1, 2, 2, 3])
    assert s.intrinsic_time() == 3.0
    c = Schedule.constant(0.3, 5)
    assert np.allclose(c.per_step(4.0)[2], 4.0) and np.isclose(c.intrinsic_time(), 1.5)
