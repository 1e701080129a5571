"""The shared L-BFGS loop: plain optax L-BFGS where the value falls, restarts where it rises."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optsched.solver.lbfgs import LBFGS_MEMORY, minimise


def _plain(f, x, iterations):
    """optax's L-BFGS loop as its documentation writes it: every step taken, nothing kept."""
    opt = optax.lbfgs(memory_size=LBFGS_MEMORY)
    value_and_grad = optax.value_and_grad_from_state(f)

    @jax.jit
    def step(x, state):
        value, grad = value_and_grad(x, state=state)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(x, updates), state, value

    state, values = opt.init(x), []
    for _ in range(iterations):
        x, state, value = step(x, state)
        values.append(float(value))
    return x, np.asarray(values)


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _cliff(x):
    # a quadratic whose minimum lies past a cliff, as the solver's objective jumps to a large
    # constant past the learning rates (and momenta) at which the loss diverges
    quadratic = jnp.sum(jnp.arange(1, x.size + 1) * (x - 1.0) ** 2)
    return jnp.where(jnp.sum(x) > 2.0, 1e3, quadratic)


def test_where_the_value_falls_the_iterates_are_plain_lbfgs(float64):
    x0 = jnp.asarray([-1.2, 1.0, 0.5, -0.3])
    x, values = _plain(_rosenbrock, x0, 15)
    assert np.all(np.diff(values) < 0)  # no rise: no restart
    theta, value, iterations, *_ = minimise(_rosenbrock, x0, 15, 0.0, 0.0)
    assert int(iterations) == 15
    np.testing.assert_allclose(np.asarray(theta), np.asarray(x), rtol=1e-12, atol=1e-14)
    assert float(value) == pytest.approx(float(_rosenbrock(x)), rel=1e-12)


def test_where_the_value_rises_the_best_point_is_kept(float64):
    x0 = jnp.zeros(4)
    _, values = _plain(_cliff, x0, 40)
    assert values[-1] == 1e3 and values.min() < 2.0  # plain L-BFGS ends past the cliff
    theta, value, *_ = jax.jit(lambda x: minimise(_cliff, x, 40, 0.0, 0.0))(x0)
    assert float(value) == float(_cliff(theta))  # the value returned is the point's
    # the constrained minimum is 1.92 (sum(x) = 2, x_k = 1 - nu / 2k): near it, not past it
    assert 1.92 <= float(value) <= values.min() + 1e-12


def _nan_past_edge(x):
    # past x_0 = 1.5 a large constant with a NaN gradient, as the solver's objective is where
    # the recursion diverged (the untaken branch of its ``where`` is NaN there)
    inside = jnp.sum((x - 2.0) ** 2) + jnp.sqrt(1.5 - x[0])
    return jnp.where(x[0] > 1.5, 1e3, inside)


def test_a_diverged_start_is_returned_as_it_is_not_as_nan(float64):
    start = jnp.asarray([3.0, 0.0, 0.0])
    x, _ = _plain(_nan_past_edge, start, 5)
    assert np.all(np.isnan(np.asarray(x)))  # plain L-BFGS steps along the NaN gradient
    theta, value, iterations, *_ = minimise(_nan_past_edge, start, 20, 0.0, 0.0)
    assert int(iterations) == 3 and np.array_equal(np.asarray(theta), np.asarray(start))
    assert float(value) == 1e3
    inside = jnp.zeros(3)  # from a finite start it stays finite and below the edge
    theta, value, *_ = minimise(_nan_past_edge, inside, 30, 0.0, 0.0)
    assert float(value) == float(_nan_past_edge(theta)) < float(_nan_past_edge(inside))
    assert float(theta[0]) <= 1.5


def test_recent_progress_is_the_fall_over_the_last_one_or_two_windows(float64):
    from optsched.solver.lbfgs import PROGRESS_WINDOW

    # a stretched quadratic: L-BFGS (f = log of it, as the solver) still falls after 120
    # iterations of a 200-dimensional problem and has settled by 400
    scale = jnp.logspace(0, 3, 200)

    def f(x):
        return jnp.log(1.0 + jnp.sum(scale * (x - 1.0) ** 2))

    x0 = jnp.zeros(200)
    early = minimise(f, x0, 2 * PROGRESS_WINDOW + 20, 0.0, -1.0)
    assert int(early[2]) == 2 * PROGRESS_WINDOW + 20
    # the note after the 50th step: the best of iterates 0 .. 50, which a run of 49 steps returns
    at_50 = minimise(f, x0, PROGRESS_WINDOW - 1, 0.0, -1.0)[1]
    np.testing.assert_allclose(float(early[4]), float(at_50 - early[1]), rtol=1e-9)
    assert float(early[4]) > 1e-3
    assert not np.isfinite(float(minimise(f, x0, 2 * PROGRESS_WINDOW - 1, 0.0, -1.0)[4]))
    late = minimise(f, x0, 400, 0.0, -1.0)
    assert int(late[2]) == 400 and float(late[4]) < 1e-9
