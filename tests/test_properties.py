"""Property-based tests (hypothesis): schedules and schedule files round-trip exactly, and a
schedule reads the same at any step, up to 2**53, through every way of reading it."""

import json
import pathlib
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optsched as o
from optsched.loss_models.convex import ConvexBound

rates = st.floats(min_value=1e-12, max_value=1e3, allow_nan=False, allow_infinity=False)


@st.composite
def schedules(draw, max_step=2**53):
    # knots at step 0 and T - 1, others in between; T up to 2**53 (steps are int64)
    horizon = draw(st.integers(1, max_step) | st.sampled_from([2**31 + 7, 2**32 + 9, max_step]))
    inner = draw(st.sets(st.integers(1, max(horizon - 2, 1)), max_size=10))
    steps = sorted({0, horizon - 1} | {s for s in inner if s < horizon - 1})
    n = len(steps)
    lr = draw(st.lists(rates, min_size=n, max_size=n))
    interpolation = draw(st.sampled_from(["linear", "previous"]))
    momentum = draw(st.none() | st.lists(st.floats(0.0, 0.999), min_size=n, max_size=n))
    return o.Schedule(
        steps,
        lr,
        horizon=horizon,
        interpolation=interpolation,
        momentum=momentum,
        units="real",
        lr_scale=draw(st.floats(1e-3, 1e6)),
    )


def _save_and_load(sched):
    model = ConvexBound(1.0, 1.0, 0.0, 1e-3)
    sol = o.Solution(model, sched, 1.0, np.zeros(2), np.zeros(2), 1.0, {}, o.RESULTS.successful, {})
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "s.json"
        sol.save(path)
        text = path.read_text()
        json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in a schedule file"))
        return o.load(path).schedule


@settings(max_examples=60, deadline=None)
@given(schedules())
def test_schedule_files_round_trip_exactly(sched):
    back = _save_and_load(sched)
    np.testing.assert_array_equal(back.steps, sched.steps)
    np.testing.assert_array_equal(back.lr, sched.lr)
    assert back.horizon == sched.horizon and back.interpolation == sched.interpolation
    assert back.units == sched.units and back.lr_scale == sched.lr_scale
    if sched.momentum is None:
        assert back.momentum is None
    else:
        np.testing.assert_array_equal(back.momentum, sched.momentum)


@settings(max_examples=60, deadline=None)
@given(schedules())
def test_a_schedule_reads_its_knots_at_any_step(sched):
    steps = np.asarray(sched.steps)
    with o.float64():
        np.testing.assert_array_equal(np.asarray(sched.lr_at(steps)), sched.lr)
        # past the last knot the last value holds (an optax loop may run past T)
        after = np.array([steps[-1] + 1, steps[-1] + 2**20], dtype=np.int64)
        np.testing.assert_array_equal(np.asarray(sched.lr_at(after)), sched.lr[-1])
        # the optax view agrees with lr_at at int64 counts
        np.testing.assert_allclose(
            np.asarray(sched(steps)), np.asarray(sched.lr_at(steps)), rtol=1e-15
        )
    # between two knots the value is the previous knot's, or between the two
    if steps.size > 1:
        mid = (steps[:-1] + steps[1:]) // 2
        with o.float64():
            got = np.asarray(sched.lr_at(mid))
        if sched.interpolation == "previous":
            np.testing.assert_array_equal(got, sched.lr[:-1])
        else:
            lo = np.minimum(sched.lr[:-1], sched.lr[1:])
            hi = np.maximum(sched.lr[:-1], sched.lr[1:])
            assert np.all(got >= lo * (1 - 1e-12)) and np.all(got <= hi * (1 + 1e-12))


@settings(max_examples=60, deadline=None)
@given(schedules(max_step=10**6), st.floats(1e-3, 1e6))
def test_units_round_trip(sched, scale):
    model = sched.to_units("model")
    np.testing.assert_allclose(model.lr, sched.lr * sched.lr_scale, rtol=1e-15)
    back = model.to_units("real", lr_scale=sched.lr_scale)
    np.testing.assert_allclose(back.lr, sched.lr, rtol=1e-14)
    other = sched.to_units("real", lr_scale=scale)
    np.testing.assert_allclose(other.lr * scale, sched.lr * sched.lr_scale, rtol=1e-14)
