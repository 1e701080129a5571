"""Momentum recursion: reduces to SGD at beta = 0; the two forms are distinct."""

import jax.numpy as jnp
import numpy as np
import pytest

from optsched import PowerLawProblem, mode_grid, spectrum
from optsched.dynamics.momentum import momentum_losses
from optsched.dynamics.sgd import step_losses

# these tests build JAX inputs themselves, at full precision
pytestmark = pytest.mark.usefixtures("float64")


@pytest.fixture
def spec():
    p = PowerLawProblem(2.0, 1.5, sigma=0.3, batch=4, features=80)
    return spectrum(p, mode_grid(80, b=1.5))


def test_zero_momentum_is_plain_sgd(spec):
    lr = jnp.linspace(0.5, 0.05, 400)
    m = jnp.full(400, 4.0)
    sgd = step_losses(spec, lr, m)
    for form in ("ema", "heavy_ball"):
        mom = momentum_losses(spec, lr, jnp.zeros(400), m, form=form)
        assert np.allclose(mom, sgd, rtol=1e-13, atol=0)


def test_ema_and_heavy_ball_match_under_the_step_mapping(spec):
    # EMA (eta, beta) equals heavy ball with mu = beta and step eta (1 - beta) for constant beta
    lr, beta = 0.4, 0.8
    m = jnp.full(300, 4.0)
    ema = momentum_losses(spec, jnp.full(300, lr), jnp.full(300, beta), m, form="ema")
    hb = momentum_losses(
        spec, jnp.full(300, lr * (1 - beta)), jnp.full(300, beta), m, form="heavy_ball"
    )
    assert np.allclose(ema, hb, rtol=1e-12)
    plain = momentum_losses(spec, jnp.full(300, lr), jnp.full(300, beta), m, form="heavy_ball")
    assert not np.allclose(ema, plain, rtol=1e-3)


def test_unknown_form_is_rejected(spec):
    with pytest.raises(ValueError, match="heavy_ball"):
        momentum_losses(spec, jnp.ones(3), jnp.zeros(3), jnp.ones(3), form="nesterov")
