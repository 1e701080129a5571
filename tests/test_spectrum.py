"""Mode quadrature against exact modes (the issue's bound: 1e-3 relative at every step)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from optsched import PowerLawProblem, Schedule, mode_grid, spectrum
from optsched.dynamics.sgd import max_stable_lr, step_losses

# these tests build JAX inputs themselves, at full precision
pytestmark = pytest.mark.usefixtures("float64")


def test_exact_grid_is_every_mode():
    g = mode_grid(50, b=1.5, method="auto")
    assert g.exact and g.size == 50 and g.k[-1] == 50.0
    with pytest.raises(ValueError, match="finite"):
        mode_grid(math.inf, b=1.5, method="exact")


def test_infinite_width_grid_is_small():
    for b in (1.05, 1.2, 2.0, 3.0):
        g = mode_grid(math.inf, b=b, max_time=1e7)
        assert g.size <= 200, (b, g.size)


def test_quadrature_weights_integrate_a_power_law():
    # sum_{k=1}^{N} k^-a with the grid (nothing frozen for a huge max_time) vs. the direct sum
    N = 100_000
    g = mode_grid(N, b=1.5, max_time=1e12, method="quadrature")
    k, w = np.asarray(g.k), np.asarray(g.weight)
    exact = np.sum(np.arange(1, N + 1, dtype=float) ** -1.3)
    assert abs(np.sum(w * k**-1.3) / exact - 1) < 1e-4


@pytest.mark.parametrize(
    "a, b, sigma, m", [(2.5, 1.2, 0.1, 4), (1.3, 2.75, 0.7, 4), (2.0, 1.05, 0.0, 8)]
)
def test_quadrature_matches_100k_exact_modes_at_every_step(a, b, sigma, m):
    N, T = 100_000, 5000
    p = PowerLawProblem(a, b, sigma=sigma, batch=m, features=N)
    exact = spectrum(p, mode_grid(N, b=b, method="exact"))
    peak = 0.6 * float(max_stable_lr(exact, m))
    s = Schedule.from_function(
        lambda t: peak * np.minimum(1.0, (t + 1) / 50) * (1 - t / T) ** 1.5 + 1e-3, T, knots=200
    )
    lr_t, _, m_t = s.per_step(m)
    ref = step_losses(exact, lr_t, m_t)
    grid = mode_grid(N, b=b, max_time=s.intrinsic_time(), method="quadrature")
    quad = step_losses(spectrum(p, grid), lr_t, m_t)
    assert grid.size <= 200
    rel = float(jnp.max(jnp.abs(quad / ref - 1)))
    assert rel <= 1e-3, rel


def test_frozen_tail_and_teacher_tail_enter_the_offset():
    p = PowerLawProblem(1.5, 2.0, sigma=0.2, features=10**6, teacher_modes=math.inf)
    sp = spectrum(p, mode_grid(p.features, b=2.0, max_time=100.0))
    # the offset holds everything beyond the tracked modes, so the initial loss is zeta(1.5)
    assert np.isclose(float(sp.initial_loss()), float(p.initial_loss()), rtol=1e-4)
    assert float(sp.offset) > float(p.tail_loss()) > 0
    assert np.isclose(float(sp.noise), 0.04 + float(sp.offset))


def test_grid_nodes_padded_give_the_grids_spectrum():
    """A grid as traced nodes (what fits use), padded with weight-0 copies of its last node,
    has the grid's loss curve (the padding adds nothing), exactly, at finite and infinite
    width, and refuses to shrink."""
    from optsched.model.spectrum import grid_nodes

    lr = jnp.full(300, 0.4)
    for N in (math.inf, 300):
        p = PowerLawProblem(a=1.8, b=1.5, sigma=0.3, features=N, batch=2.0)
        grid = mode_grid(N, b=1.5, max_time=200.0)
        reference = step_losses(spectrum(p, grid), lr, jnp.full(300, 2.0))
        padded = grid_nodes(grid, grid.size + 13)
        assert padded.k.shape == (grid.size + 13,)
        np.testing.assert_allclose(
            step_losses(spectrum(p, padded), lr, jnp.full(300, 2.0)), reference, rtol=1e-13
        )
    with pytest.raises(ValueError, match="cannot pad"):
        grid_nodes(grid, grid.size - 1)
