"""Loss-driven adaptive warm-up: the rate formula, the optax transformation, and the fit of the
smoothness constants on problems where they are known."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optsched.warmup import (
    Smoothness,
    adaptive_rate,
    fit_smoothness,
    local_smoothness,
    scale_by_adaptive_warmup,
)

S = Smoothness(K0=1.0, K1=0.0, Kr=1.0, r=2.0, loss_star=0.5)


def test_rate_rises_then_falls_with_the_gap_and_peaks_at_sqrt_k0_over_kr():
    gaps = np.array([10.0, 3.0, 1.0, 0.3, 0.1])
    rates = np.asarray(S.rate(gaps))
    np.testing.assert_allclose(rates, gaps / (1.0 + gaps**2), rtol=1e-6)
    assert rates[2] == pytest.approx(0.5) and rates.argmax() == 2  # D* = sqrt(K0 / Kr) = 1
    clipped = adaptive_rate(S, jnp.array([100.5, 1.5, 0.5, jnp.nan]), min_lr=0.05, max_lr=0.4)
    np.testing.assert_allclose(np.asarray(clipped), [0.05, 0.4, 0.05, 0.05], rtol=1e-6)


def test_transformation_averages_the_loss_ignores_nan_and_jits():
    tx = scale_by_adaptive_warmup(S, min_lr=1e-3, max_lr=1.0, smoothing=0.5)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    step = jax.jit(lambda u, s, v: tx.update(u, s, params, value=v))
    u, state = step({"w": jnp.ones(3)}, state, 3.5)  # first loss: average = 3.5, D = 3
    np.testing.assert_allclose(u["w"], -3.0 / 10.0, rtol=1e-6)
    u, state = step({"w": jnp.ones(3)}, state, 1.5)  # the EMA, bias-corrected
    avg = (0.25 * 3.5 + 0.5 * 1.5) / 0.75
    np.testing.assert_allclose(float(state.rate), (avg - 0.5) / (1 + (avg - 0.5) ** 2), rtol=1e-6)
    before = float(state.rate)
    u, state = step({"w": jnp.ones(3)}, state, jnp.nan)  # a NaN loss changes nothing
    assert float(state.rate) == before and np.all(np.isfinite(np.asarray(u["w"])))
    assert int(state.count) == 3


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="min_lr"):
        scale_by_adaptive_warmup(S, min_lr=0.0, max_lr=1.0)
    with pytest.raises(ValueError, match="smoothing"):
        scale_by_adaptive_warmup(S, min_lr=0.1, max_lr=1.0, smoothing=1.0)
    with pytest.raises(ValueError, match="K0"):
        scale_by_adaptive_warmup(S._replace(K0=float("nan")), min_lr=0.1, max_lr=1.0)


def test_fit_recovers_known_constants_and_the_curvature_along_a_step():
    rng = np.random.default_rng(0)
    D = np.geomspace(1e-2, 30.0, 40)
    L = (2.0 + 0.5 * D + 0.3 * D**2) * np.exp(0.01 * rng.standard_normal(D.size))
    fit = fit_smoothness(D, L, r=2.0)
    assert fit.K0 == pytest.approx(2.0, rel=0.03) and fit.Kr == pytest.approx(0.3, rel=0.03)
    assert fit.K1 == pytest.approx(0.5, rel=0.1)
    no_linear = fit_smoothness(D, 1.0 + D**2, r=2.0)  # the non-negative fit leaves K1 at 0
    assert no_linear.K1 == pytest.approx(0.0, abs=1e-9) and no_linear.K0 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="finite"):
        fit_smoothness([1.0, np.nan, 2.0], [1.0, 1.0, 1.0])
    # on a quadratic the curvature along an eigenvector is its eigenvalue
    H = jnp.diag(jnp.array([4.0, 1.0, 0.25]))

    def grad(x):
        return H @ x

    x = jnp.array([1.0, 2.0, 3.0])
    assert local_smoothness(grad, x, x + jnp.array([0.0, 0.1, 0.0])) == pytest.approx(1.0)


def test_with_lion_the_warm_up_emerges_from_the_loss():
    # f = sum log cosh(x): curvature sech^2 shrinks as the gap grows; start far away
    def f(x):
        return jnp.sum(jnp.log(jnp.cosh(x)))

    tx = optax.chain(
        optax.scale_by_lion(),
        scale_by_adaptive_warmup(
            Smoothness(0.5, 0.0, 0.5, 2.0, 0.0), min_lr=1e-3, max_lr=0.5, smoothing=0.0
        ),
    )
    x = jnp.full(8, 6.0)
    state = tx.init(x)
    rates, losses = [], []
    for _ in range(300):
        loss, g = jax.value_and_grad(f)(x)
        u, state = tx.update(g, state, x, value=loss)
        x = optax.apply_updates(x, u)
        rates.append(float(state[1].rate))
        losses.append(float(loss))
    rates = np.array(rates)
    peak = int(rates.argmax())
    assert 0 < peak < 299  # the rate warms up, then decays
    assert rates[0] < 0.5 * rates[peak] and rates[-1] < 0.5 * rates[peak]
    assert losses[-1] < 1e-2 * losses[0]
