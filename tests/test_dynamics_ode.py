"""Continuous-time ODE (diffrax) vs the exact recursion: within 1% when eta * lambda_1 <= 0.05."""

import jax
import numpy as np
import pytest

from optsched import ContinuousTime, PowerLawProblem, Schedule, loss_curve, mode_grid, spectrum

# these tests build JAX inputs themselves, at full precision
pytestmark = pytest.mark.usefixtures("float64")


@pytest.mark.parametrize("interpolation", ["linear", "previous"])
def test_ode_matches_recursion_at_small_learning_rate(interpolation):
    T = 2000
    p = PowerLawProblem(2.0, 1.5, sigma=0.3, batch=4, features=2000)
    base = Schedule.from_function(lambda t: 0.045 * (1 - t / T) + 0.005, T, knots=40)
    s = Schedule(base.steps, base.lr, interpolation=interpolation)
    ode = loss_curve(p, s, method="ode")
    ref = loss_curve(p, s, method="scan")
    rel = np.max(np.abs(np.asarray(ode.loss) / np.asarray(ref.loss)[np.asarray(ode.steps)] - 1))
    assert rel <= 0.01, rel
    assert int(ode.steps[-1]) == T


def test_ode_is_differentiable_in_the_schedule():
    T = 500
    p = PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4, features=10**5)
    sp = spectrum(p, mode_grid(p.features, b=1.2, max_time=50.0))
    dyn = ContinuousTime(save_points=8)

    @jax.jit  # one compilation for the six finite differences (eager diffrax is slow)
    def final(lr):
        s = Schedule([0, 250, T - 1], lr, interpolation="previous")
        return dyn.loss_curve(sp, s, 4.0).final_loss

    lr = np.array([0.05, 0.04, 0.02])
    g = jax.grad(final)(lr)
    eps = 1e-6
    fd = [(final(lr + eps * e) - final(lr - eps * e)) / (2 * eps) for e in np.eye(3)]
    assert np.allclose(g, fd, rtol=1e-3)
