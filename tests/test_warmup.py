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
    estimate_loss_star,
    fit_smoothness,
    local_smoothness,
    scale_by_adaptive_warmup,
    smoothness_from_pilot,
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
    # a sign step of size eta (l-inf norm eta): |H u|_1 = 4 + 1 + 0.25 per unit eta
    u = jnp.array([1.0, -1.0, 1.0])
    for eta in (1e-2, 0.5):
        kappa = local_smoothness(grad, x, x - eta * u, norm="linf")
        assert kappa == pytest.approx(5.25, rel=1e-4)
    # spectral: f = tr(X^T A X) / 2 with A = diag(3, 1) on a (2, 2) matrix; a rank-one step
    # along the first row has spectral norm |step| and a gradient change A step, nuclear 3 |step|
    A = jnp.diag(jnp.array([3.0, 1.0]))
    step = jnp.array([[0.2, 0.0], [0.0, 0.0]])
    X = jnp.ones((2, 2))
    assert local_smoothness(lambda X: A @ X, X, X + step, norm="spectral") == pytest.approx(3.0)
    with pytest.raises(ValueError, match="norm must be one of"):
        local_smoothness(grad, x, x + 1.0, norm="l1")


DIRECTIONS = {
    "lion": optax.scale_by_lion,
    "muon": optax.contrib.scale_by_muon,  # orthogonalised momentum of the (8, 8) matrix
    "normalised sgd": optax.normalize_by_update_norm,  # g / |g|
}


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
def test_with_a_norm_constrained_direction_the_warm_up_emerges_from_the_loss(direction):
    # f = sum log cosh(x): curvature sech^2 shrinks as the gap grows; start far away
    def f(x):
        return jnp.sum(jnp.log(jnp.cosh(x)))

    # each returns a direction to subtract, as the warm-up's -rate expects
    tx = optax.chain(
        DIRECTIONS[direction](),
        scale_by_adaptive_warmup(
            Smoothness(0.5, 0.0, 0.5, 2.0, 0.0), min_lr=1e-3, max_lr=0.5, smoothing=0.0
        ),
    )
    x = jnp.full((4, 2), 6.0).at[0, 0].set(5.0)  # a matrix, for Muon

    def step(carry, _):
        x, state = carry
        loss, g = jax.value_and_grad(f)(x)
        u, state = tx.update(g, state, x, value=loss)
        return (optax.apply_updates(x, u), state), (state[1].rate, loss)

    _, (rates, losses) = jax.lax.scan(step, (x, tx.init(x)), length=300)
    rates, losses = np.asarray(rates), np.asarray(losses)
    peak = int(rates.argmax())
    assert 0 < peak < 299  # the rate warms up, then decays
    assert rates[0] < 0.5 * rates[peak] and rates[-1] < 0.5 * rates[peak]
    assert losses[-1] < 1e-2 * losses[0]


def test_with_a_decay_the_loss_sets_the_warm_up_length_and_then_lets_go():
    decay = optax.cosine_decay_schedule(1.0, 100)
    tx = scale_by_adaptive_warmup(S, min_lr=1e-3, max_lr=0.4, smoothing=0.0, decay=decay)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    step = jax.jit(lambda s, v: tx.update({"w": jnp.ones(2)}, s, params, value=v))
    # gaps 9, 5, 3, 2 (rates 0.11, 0.19, 0.3, 0.4): the fourth reaches max_lr and ends the warm-up
    rates = []
    for k, loss in enumerate([9.5, 5.5, 3.5, 2.5, 0.6, 100.0, jnp.nan]):
        _, state = step(state, loss)
        rates.append(float(state.rate))
        expected = S.rate(loss - 0.5) if k < 3 else 0.4
        assert rates[-1] == pytest.approx(float(expected) * float(decay(k)), rel=1e-5)
    assert bool(state.over)
    # without a decay the same losses move the rate down again (gap 0.1, then 99.5)
    free = scale_by_adaptive_warmup(S, min_lr=1e-3, max_lr=0.4, smoothing=0.0)
    state = free.init(params)
    for loss in [9.5, 2.5, 0.6]:
        _, state = free.update({"w": jnp.ones(2)}, state, params, value=loss)
    assert float(state.rate) == pytest.approx(0.1 / 1.01, rel=1e-5)


def test_the_loss_floor_and_the_constants_come_back_from_a_pilot():
    rng = np.random.default_rng(1)
    t = np.arange(10, 400, 10.0)
    losses = 1.3 + 2.0 * t**-0.5 + 1e-4 * rng.standard_normal(t.size)
    assert estimate_loss_star(t, losses) == pytest.approx(1.3, rel=0.02)
    D = losses - 1.3
    curvature = 0.2 + 3.0 * D**2
    fit = smoothness_from_pilot(t, losses, curvature)
    assert fit.loss_star == pytest.approx(1.3, rel=0.02)
    assert fit.K0 == pytest.approx(0.2, rel=0.15) and fit.Kr == pytest.approx(3.0, rel=0.15)
    with pytest.raises(ValueError, match="strictly increasing"):
        estimate_loss_star([1, 3, 2, 4], [4.0, 3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="at least 4"):
        estimate_loss_star([1, 2, 3], [3.0, 2.0, 1.0])


def test_the_relative_rate_takes_its_scale_from_max_lr_and_peaks_at_the_peak_gap():
    big = Smoothness(K0=4e4, K1=0.0, Kr=1e4, r=2.0, loss_star=0.0)  # D* = 2, rho(D*) = 2.5e-5
    assert big.peak_gap == pytest.approx(2.0)
    tx = scale_by_adaptive_warmup(big, min_lr=1e-4, max_lr=0.01, smoothing=0.0, relative=True)
    params = {"w": jnp.ones(1)}
    state = tx.init(params)
    for loss, expected in [(8.0, 0.01 * 2 * 8 * 2 / (64 + 4)), (2.0, 0.01), (1.0, 0.008)]:
        _, state = tx.update({"w": jnp.ones(1)}, state, params, value=loss)
        assert float(state.rate) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="relative=True needs"):
        scale_by_adaptive_warmup(big._replace(Kr=0.0), min_lr=1e-4, max_lr=0.01, relative=True)
