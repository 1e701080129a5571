"""The convex last-iterate bound against independent references, per-step gradient norms, and
the refinement against a direct minimisation of the bound."""

import math

import numpy as np
import pytest

import optsched as o
from optsched.loss_models.convex import (
    best_peak_bound,
    convex_bound,
    convex_bound_at,
    direct_minimum,
    refine_from_grad_norms,
)

pytestmark = pytest.mark.usefixtures("float64")


def _omega_longdouble(lr, g2, D2=1.0):
    """Omega_T written out from its definition, in extended precision, with suffix sums."""
    eta = np.asarray(lr, dtype=np.longdouble)
    g2 = np.broadcast_to(np.asarray(g2, dtype=np.longdouble), eta.shape)
    T = eta.size
    suffix = np.cumsum(eta[::-1])[::-1]  # sum_{t >= k}
    suffix2 = np.cumsum((eta**2 * g2)[::-1])[::-1]
    total = np.sum(eta[:T])
    value = (D2 + suffix2[0]) / (2 * total)
    for k in range(T - 1):
        value += eta[k] * suffix2[k] / (2 * suffix[k + 1] * suffix[k])
    return value


@pytest.mark.parametrize("family", ["constant", "linear", "wsd", "cosine"])
def test_bound_at_ten_thousand_steps_matches_extended_precision(family):
    T = 10_000
    lr = np.asarray(o.family(family, 1.0, T).per_step(1.0)[0])
    lr = np.where(lr > 0, lr, 1e-3)  # the reference is undefined at a zero last rate
    ours = float(convex_bound_at(lr, [T], 1.0, 0.5)[0])
    ref = float(_omega_longdouble(lr, 0.5))
    assert ours == pytest.approx(ref, rel=1e-6)


def test_per_step_gradient_norms():
    rng = np.random.default_rng(1)
    T = 300
    lr = rng.uniform(0.1, 1.0, T)
    g2 = rng.uniform(0.5, 2.0, T)
    got = float(convex_bound_at(lr, [T], 2.0, g2)[0])
    assert got == pytest.approx(float(_omega_longdouble(lr, g2, 2.0)), rel=1e-10)
    # a constant array is the scalar G^2
    np.testing.assert_allclose(
        convex_bound_at(lr, [50, T], 2.0, np.full(T, 0.7)),
        convex_bound_at(lr, [50, T], 2.0, 0.7),
        rtol=1e-13,
    )
    for bad in (np.ones(T - 1), np.ones((T, T))):
        with pytest.raises(ValueError, match=f"per-step G_t\\^2 of shape \\({T},\\)"):
            convex_bound_at(lr, [T], 1.0, bad)


def test_trailing_zero_rates_leave_the_bound_where_the_schedule_without_them_puts_it():
    lr = np.linspace(1.0, 0.1, 50)
    with_zeros = np.concatenate([lr, np.zeros(3)])
    np.testing.assert_allclose(
        convex_bound_at(with_zeros, [53], 1.0, 0.3), convex_bound_at(lr, [50], 1.0, 0.3), rtol=1e-14
    )
    assert np.isfinite(np.asarray(convex_bound(with_zeros, 1.0, 0.3))).all()


@pytest.mark.parametrize(
    ("norms", "limit"),
    [
        (np.linspace(1.0, 3.0, 100), 0.015),  # rising
        (np.linspace(3.0, 1.0, 100), 0.07),  # falling
        (1.0 + 0.5 * np.sin(np.linspace(0.0, 6.0, 100)) ** 2, 0.03),  # oscillating
    ],
)
def test_refinement_is_near_the_direct_minimum_of_the_bound(norms, limit):
    T = norms.size
    g2 = norms**2
    refined = np.asarray(refine_from_grad_norms(norms, 1.0, window=1, knots=T).per_step(1.0)[0])
    ours = best_peak_bound(refined, g2)
    linear = (T - np.arange(T)) / T
    direct = min(direct_minimum(g2, refined / np.sqrt(T)), direct_minimum(g2, linear / np.sqrt(T)))
    assert direct <= ours * (1 + 1e-9)
    assert ours / direct - 1 < limit
    # the weighting by later squared norms (optsched 0.2) is further off when the norms move
    inv = np.concatenate([np.cumsum(g2[::-1])[::-1][1:], [0.0]]) / g2
    assert best_peak_bound(inv, g2) > ours
    # and the continuum optimum 2 D / sqrt(sum g^-2) is what the refinement attains, to O(1/T)
    assert ours == pytest.approx(2.0 / math.sqrt(np.sum(1.0 / g2)), rel=5.0 / T)
