"""The export layer against the file's expansion and against optax's own behaviour."""

import csv
import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optsched as o
from optsched.cli import main
from optsched.export import (
    batch_size_schedule,
    batches,
    to_csv,
    to_optax,
    to_optax_momentum,
    to_optax_source,
)
from optsched.io import load

# these tests build JAX inputs themselves, at full precision
pytestmark = pytest.mark.usefixtures("float64")

RNG = np.random.default_rng(0)
T = 157


def _schedule(interpolation, momentum=False, batch=False):
    steps = np.unique(np.concatenate([[0], RNG.choice(np.arange(1, T - 1), 20), [T - 1]]))
    k = len(steps)
    return o.Schedule(
        steps,
        RNG.uniform(0.01, 0.5, k),
        horizon=T,
        interpolation=interpolation,
        momentum=RNG.uniform(0.0, 0.95, k) if momentum else None,
        batch=RNG.uniform(1.0, 9.0, k) if batch else None,
    )


@pytest.mark.parametrize("interpolation", ["linear", "previous"])
def test_to_optax_is_the_file_expansion_at_every_step(interpolation, tmp_path):
    sched = _schedule(interpolation)
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "format": "optsched.schedule/1",
                "horizon": T,
                "interpolation": interpolation,
                "steps": np.asarray(sched.steps).tolist(),
                "lr": np.asarray(sched.lr).tolist(),
                "problem": {"a": 2.5, "b": 1.2, "sigma": 0.1, "batch": 4, "features": 60},
            }
        )
    )
    from_file = load(path).schedule
    fn = jax.jit(to_optax(sched))
    t = np.arange(T + 20)
    got = np.asarray(fn(jnp.asarray(t)))
    want = np.asarray(from_file.lr_at(np.minimum(t, T - 1)))
    assert np.array_equal(got, want)  # bit for bit, and the last value is held after T
    # scalar steps, as optax calls it with its int32 count
    assert all(float(fn(jnp.int32(s))) == got[s] for s in (0, 1, T // 2, T - 1, T + 5))


@pytest.mark.parametrize("interpolation", ["linear", "previous"])
def test_per_step_expansion_matches_the_compiled_kernel(interpolation):
    # concrete knots expand by NumPy, traced ones by the kernel: the same values to an ulp
    sched = _schedule(interpolation, momentum=True, batch=True)
    t = np.arange(T)
    concrete = sched.per_step(4.0)
    traced = jax.jit(lambda s: s.per_step(4.0))(sched)
    kernel = (sched.lr_at(t), sched.momentum_at(t), sched.batch_at(t, 4.0))
    for a, b, c in zip(concrete, traced, kernel, strict=True):
        assert a.shape == (T,) and a.dtype == jnp.float64
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)
        np.testing.assert_allclose(a, c, rtol=1e-15, atol=0)
    lr, beta, m = o.Schedule([0, T - 1], [0.3, 0.1], horizon=T).per_step(4.0)
    assert np.all(np.asarray(beta) == 0.0) and np.all(np.asarray(m) == 4.0)


def test_peak_rescaling_and_horizon_stretch():
    sched = _schedule("linear")
    lr = np.asarray(sched.lr_at(np.arange(T)))
    scaled = np.asarray(to_optax(sched, peak_lr=3.0)(jnp.arange(T)))
    assert scaled.max() == pytest.approx(3.0, rel=1e-15)
    np.testing.assert_allclose(scaled / lr, 3.0 / lr.max(), rtol=1e-13)

    long = to_optax(sched, total_steps=3 * T)
    s = jnp.arange(3 * T)
    np.testing.assert_allclose(
        np.asarray(long(s)), np.asarray(sched.lr_at(s * (T - 1) / (3 * T - 1))), rtol=1e-12
    )
    assert float(long(0)) == lr[0] and float(long(3 * T - 1)) == pytest.approx(lr[-1], rel=1e-14)
    with pytest.raises(ValueError, match="peak_lr"):
        to_optax(sched, peak_lr=-1.0)
    with pytest.raises(ValueError, match="total_steps"):
        to_optax(sched, total_steps=0)


def _optax_sgd_iterates(lr, mu, grads) -> np.ndarray:
    """The parameters after each step of ``optax.sgd`` with injected ``(lr, mu)`` schedules."""
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=mu)
    params = jnp.zeros(grads.shape[1])
    state = opt.init(params)
    update = jax.jit(opt.update)
    out = []
    for g in grads:
        updates, state = update(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.asarray(params))
    return np.array(out)


def test_momentum_export_reproduces_ema_iterates():
    """optax's heavy-ball trace with the exported (lr, mu) is EMA momentum with (eta, beta)."""
    sched = _schedule("linear", momentum=True)
    eta, beta, _ = (np.asarray(x) for x in sched.per_step(1.0))
    grads = RNG.normal(size=(T, 7))

    w, v = np.zeros(7), np.zeros(7)
    ema = []
    for t in range(T):  # the model's EMA momentum, docs/model.md
        v = beta[t] * v + (1 - beta[t]) * grads[t]
        w = w - eta[t] * v
        ema.append(w)

    assert np.max(np.abs(_optax_sgd_iterates(*to_optax_momentum(sched), grads) - ema)) < 1e-10
    # and the naive export (mu = beta, lr = eta (1 - beta)) is not exact for varying beta
    naive = _optax_sgd_iterates(
        lambda c: sched.lr_at(c) * (1 - sched.momentum_at(c)), sched.momentum_at, grads
    )
    assert np.max(np.abs(naive[-1] - ema[-1])) > 1e-4


def test_batch_sizes_keep_the_budget():
    sched = _schedule("linear", batch=True)
    _, _, m = sched.per_step(1.0)
    m = np.asarray(m)
    bs = batch_size_schedule(sched)
    assert bs.sizes.dtype.kind == "i" and bs.sizes.shape == (T,)
    assert bs.total == int(np.round(m.sum())) == bs.sizes.sum()
    assert np.all(np.abs(bs.sizes - m) < 1) and bs.max_rounding == np.max(np.abs(bs.sizes - m))
    assert bs(T + 10) == bs.sizes[-1]
    cut = list(batches(range(bs.total), bs))
    assert [len(b) for b in cut] == bs.sizes.tolist()
    assert [x for b in cut for x in b] == list(range(bs.total))
    assert len(list(batches(range(5), [2, 2, 2]))) == 2  # no short last batch


def test_csv_and_python_exports_match_to_optax(tmp_path):
    sched = _schedule("previous", momentum=True)
    rows = list(csv.DictReader(io.StringIO(to_csv(sched))))
    assert len(rows) == T and rows[0].keys() == {"step", "lr", "momentum", "batch"}
    lr, beta, _ = sched.per_step(1.0)
    assert [float(r["lr"]) for r in rows] == np.asarray(lr).tolist()
    assert [float(r["momentum"]) for r in rows] == np.asarray(beta).tolist()

    with pytest.raises(ValueError, match="learning rate only, and this schedule has momentum"):
        to_optax_source(sched)  # never drops the momentum silently
    sched = sched.replace(momentum=None)
    namespace = {}
    exec(to_optax_source(sched), namespace)  # noqa: S102 - the generated module under test
    t = jnp.arange(T + 3)
    assert np.array_equal(np.asarray(namespace["lr_schedule"](t)), np.asarray(to_optax(sched)(t)))


def test_cli_export(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps(
            {
                "format": "optsched.schedule/1",
                "horizon": 5,
                "interpolation": "linear",
                "steps": [0, 4],
                "lr": [0.4, 0.0],
                "problem": {"a": 2.5, "b": 1.2, "sigma": 0.1, "batch": 4, "features": 60},
            }
        )
    )
    assert main(["export", str(path), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "step,lr,momentum,batch" and lines[3] == "2,0.2,0.0,4.0"
    out = tmp_path / "sched.py"
    assert main(["export", str(path), "--format", "optax-py", "--out", str(out)]) == 0
    assert "lr_schedule" in out.read_text()
    assert "written to" in capsys.readouterr().err
    # with a warm-up over 2 steps: the first rate halved, the others as they were
    assert main(["export", str(path), "--format", "csv", "--warmup", "2"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.2, 0.3, 0.2, 0.1, 0.0], abs=1e-15)
    assert main(["export", str(path), "--format", "csv", "--warmup", "6"]) == 2
    assert "--warmup must be 0 .. T = 5" in capsys.readouterr().err
    path.write_text("{")
    assert main(["export", str(path), "--format", "csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid JSON" in err[0]


@pytest.fixture(scope="module")
def easy_solution():
    p = o.PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4, features=60)
    return o.solve(p, 200, 1.0, optimiser=o.LBFGS(max_knots=32))


def test_transfer_rescale_follows_theory_and_resolve_says_so(easy_solution):
    from optsched.transfer import transfer

    sol = easy_solution
    xi = o.theory.exponents(2.5, 1.2).xi
    r = transfer(sol, 800, method="rescale")
    assert r.stats["transfer"]["method"] == "rescaled" and r.horizon == 800
    ratio = float(jnp.max(r.schedule.lr)) / float(jnp.max(sol.schedule.lr))
    assert ratio == pytest.approx(4.0 ** (-xi), rel=1e-12)
    # the predicted loss is the exact loss of the rescaled schedule
    exact = o.loss_curve(sol.problem, r.schedule, method="scan").loss[-1]
    assert r.final_loss == pytest.approx(float(exact), rel=1e-8)
    s = transfer(sol, 800)
    assert s.stats["transfer"] == {"method": "resolved", "from_horizon": 200}
    assert s.final_loss <= r.final_loss * (1 + 1e-9)  # re-solving is at least as good
    with pytest.raises(ValueError, match="new_horizon"):
        transfer(sol, 0)


def test_heavy_ball_export_is_optax_trace_exactly():
    """A heavy-ball schedule exports as it is: optax's trace with (lr, mu) is the iteration."""
    sched = _schedule("linear", momentum=True).replace(momentum_form="heavy_ball")
    eta, mu_t, _ = (np.asarray(x) for x in sched.per_step(1.0))
    grads = RNG.normal(size=(T, 5))
    w, tau, ref = np.zeros(5), np.zeros(5), []
    for t in range(T):  # tau <- g + mu tau, w <- w - eta tau
        tau = grads[t] + mu_t[t] * tau
        w = w - eta[t] * tau
        ref.append(w)
    assert np.max(np.abs(_optax_sgd_iterates(*to_optax_momentum(sched), grads) - ref)) < 1e-10


@pytest.mark.parametrize("interpolation", ["previous", "linear"])
def test_a_warmup_multiplies_the_rate_by_a_linear_ramp_in_every_export(interpolation):
    """``warmup=W``: the rate times min(1, (t+1)/W), the same in the optax schedule, the CSV and
    the generated module (to 1e-14); the ramp ends at step W - 1; the momentum column is
    untouched; W = 0 is the schedule itself."""
    sched = _schedule(interpolation, momentum=True)
    W = 20
    t = jnp.arange(T + 3)
    plain, warm = to_optax(sched)(t), to_optax(sched, warmup=W)(t)
    ramp = np.minimum(1.0, (np.arange(T + 3) + 1) / W)
    np.testing.assert_allclose(np.asarray(warm), np.asarray(plain) * ramp, rtol=1e-15)
    assert float(warm[W - 1]) == float(plain[W - 1]) and float(warm[0]) < float(plain[0])
    assert np.array_equal(np.asarray(to_optax(sched, warmup=0)(t)), np.asarray(plain))
    rows = list(csv.DictReader(io.StringIO(to_csv(sched, warmup=W))))
    lr, beta, _ = sched.per_step(1.0)
    assert [float(r["lr"]) for r in rows] == (np.asarray(lr) * ramp[:T]).tolist()
    assert [float(r["momentum"]) for r in rows] == np.asarray(beta).tolist()
    namespace = {}
    exec(to_optax_source(sched.replace(momentum=None), warmup=W), namespace)  # noqa: S102
    np.testing.assert_allclose(
        np.asarray(namespace["lr_schedule"](t)),
        np.asarray(to_optax(sched.replace(momentum=None), warmup=W)(t)),
        rtol=1e-14,
    )
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="warmup must be a non-negative integer"):
            to_optax(sched, warmup=bad)
