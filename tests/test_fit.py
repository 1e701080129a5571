"""Fitting the model to pilot runs: recovery on synthetic truth, held-out prediction, errors."""

import json

import numpy as np
import pytest

import optsched as o
from optsched.loss_models.fitted import FittedProblem, PilotRun, fit

TRUE = {"a": 2.0, "b": 1.5, "sigma": 0.3, "lr_scale": 0.4, "loss_scale": 1.5, "loss_floor": 0.8}
T = 400


@pytest.fixture(scope="module")
def truth():
    problem = o.PowerLawProblem(TRUE["a"], TRUE["b"], sigma=TRUE["sigma"], batch=1.0)
    return FittedProblem(
        problem, TRUE["lr_scale"], TRUE["loss_scale"], TRUE["loss_floor"], {}, np.zeros((6, 6)), 0.0
    )


@pytest.fixture(scope="module")
def fitted(truth):
    """Two pilot runs (a constant rate and a WSD cooldown), 0.3% multiplicative noise."""
    rng = np.random.default_rng(0)
    steps = np.arange(0, T + 1, 4)
    runs = []
    for sched in (o.Schedule.constant(1.0, T), o.family("wsd", 1.0, T, cooldown=0.3)):
        clean = truth.predict(sched, steps)
        runs.append(PilotRun(sched, steps, clean * np.exp(0.003 * rng.standard_normal(clean.size))))
    return fit(runs)


def test_recovers_the_exponents_within_5_percent(fitted):
    values = fitted.values()
    assert values["a"] == pytest.approx(TRUE["a"], rel=0.05)
    assert values["b"] == pytest.approx(TRUE["b"], rel=0.05)
    # the standard errors are honest: every parameter within 4 of them of the truth
    for name, true in TRUE.items():
        assert abs(values[name] - true) < 4 * fitted.stderr[name] + 1e-12, name
    assert fitted.residual_rms < 0.005  # the noise level is 0.003


@pytest.mark.parametrize(
    "sched",
    [
        o.family("cosine", 1.0, T),
        o.family("linear", 0.7, T),
        o.family("wsd", 1.0, 2 * T, cooldown=0.2),
    ],
    ids=["cosine", "linear, other peak", "wsd, twice the horizon"],
)
def test_predicts_held_out_schedules_within_half_a_percent(fitted, truth, sched):
    assert fitted.predict(sched)[-1] == pytest.approx(truth.predict(sched)[-1], rel=0.005)


def test_solve_on_the_fitted_problem_gives_real_units(fitted):
    solution = o.solve(fitted, 300, 1.0, optimiser=o.LBFGS(max_knots=16))
    real = solution.schedule
    assert real.units == "real" and real.lr_scale == fitted.lr_scale
    assert real.horizon == 300
    assert float(np.max(np.asarray(real.lr))) <= 1.0 + 1e-12
    np.testing.assert_allclose(
        np.asarray(real.to_units("model").lr), np.asarray(real.lr) * fitted.lr_scale, rtol=1e-12
    )
    # the optimum beats the cosine baseline in the fitted model's own prediction
    assert fitted.predict(real)[-1] < fitted.predict(o.family("cosine", 1.0, 300))[-1]


def test_the_largest_stable_peak_is_predicted_with_an_honest_error(fitted, truth):
    value, stderr = fitted.max_stable_peak()
    true = truth.problem.max_stable_lr() / truth.lr_scale
    assert stderr > 0 and abs(value - true) < 4 * stderr + 1e-3 * true
    assert value == pytest.approx(true, rel=0.05)
    # the cap solve uses is 99% of it
    assert fitted.default_lr_max() == pytest.approx(0.99 * value, rel=1e-12)


def test_the_stable_peak_of_a_schedule_is_where_its_curve_first_rises(fitted):
    edge, edge_err = fitted.max_stable_peak()
    constant, _ = fitted.max_stable_peak(o.Schedule.constant(1.0, 300))
    assert constant == pytest.approx(edge, rel=0.02)  # held for 300 steps: the constant edge
    cosine, cosine_err = fitted.max_stable_peak(o.family("cosine", 0.3, 300))  # peak ignored
    assert cosine >= constant * (1 - 1e-3) and cosine_err == pytest.approx(edge_err * cosine / edge)

    shape = np.asarray(o.family("cosine", 1.0, 300).per_step(1)[0])

    def rises(peak):
        curve = np.asarray(fitted.curve(peak * shape))
        return curve[1:].max() > curve[0]

    assert not rises(0.999 * cosine) and rises(1.01 * cosine)


def test_bad_runs_fail_clearly():
    sched = o.Schedule.constant(0.1, 10)
    with pytest.raises(ValueError, match="equal length"):
        PilotRun(sched, [0, 5], [1.0])
    with pytest.raises(ValueError, match="positive"):
        PilotRun(sched, [0, 5], [1.0, -1.0])
    with pytest.raises(ValueError, match="0 .. T = 10"):
        PilotRun(sched, [0, 11], [1.0, 0.5])
    with pytest.raises(ValueError, match="at least one"):
        fit([])


def test_predictions_as_a_function_of_the_parameters_match_predict(fitted):
    """What rank differentiates is the model's own prediction (its quadrature, to 1e-6)."""
    sched = o.family("cosine", 1.0, T)
    values, cov = fitted.parameters()
    assert cov.shape == (6, 6) and np.all(np.diag(cov) >= 0)
    steps = np.array([10, 100, T])
    with o.float64():
        lr = sched.per_step(1.0)[0]
        at = np.asarray(fitted.curve_at_parameters(values, lr, steps))
    np.testing.assert_allclose(at, fitted.predict(sched, steps), rtol=1e-6)


def test_predictions_in_calls_equal_the_one_scan_recursion(truth):
    """predict runs the recursion in calls of STEPS_PER_CALL steps (padded with zero rates), on
    padded nodes: the same curve, to rounding, as one scan of the exact recursion on the fit's
    grid, over a horizon that is not a multiple of the call length, with and without a batch
    schedule."""
    from optsched.dynamics.choice import fit_grid
    from optsched.dynamics.sgd import step_losses
    from optsched.loss_models.fitted import STEPS_PER_CALL

    horizon = 2 * STEPS_PER_CALL + 37
    sched = o.family("cosine", 0.8, horizon)
    ramp = sched.replace(batch=np.linspace(1.0, 4.0, sched.lr.size))
    steps = np.array([0, 1, STEPS_PER_CALL, STEPS_PER_CALL + 1, horizon])
    for schedule in (sched, ramp):
        lr, _, m = schedule.per_step(float(truth.problem.batch))
        lr = truth.lr_scale * np.asarray(lr)
        with o.float64():
            spec = o.spectrum(truth.problem, fit_grid(float(truth.problem.b), float(lr.sum())))
            one_scan = np.asarray(step_losses(spec, lr, m))[steps]
        np.testing.assert_allclose(
            truth.predict(schedule, steps),
            truth.loss_floor + truth.loss_scale * one_scan,
            rtol=1e-12,
        )


def test_max_peak_command_prints_the_models_edge(fitted, tmp_path, capsys):
    from optsched.cli import main
    from optsched.loss_models.store import save_model

    path = tmp_path / "plrf.json"
    save_model(fitted, path)
    capsys.readouterr()
    assert main(["max-peak", str(path), "--schedule", "cosine:1:300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    value, stderr = fitted.max_stable_peak(o.family("cosine", 1.0, 300))
    assert out["max_stable_peak"] == pytest.approx(value, rel=1e-6)
    assert out["stderr"] == pytest.approx(stderr, rel=1e-6)
    assert main(["max-peak", str(path)]) == 0
    assert "largest stable peak learning rate (constant)" in capsys.readouterr().out


def test_the_dense_jacobian_is_the_residuals_derivative():
    """``dense_jacobian`` changes how the derivative is computed, not what it is: its Jacobian
    (forward mode) and gradient (reverse mode, through the transpose) equal the plain ones, and
    it is the same function object on every call (the solver's compiled program is reused)."""
    import jax
    import jax.numpy as jnp

    from optsched.loss_models.fitting import dense_jacobian

    def residuals(theta, data):
        x, y = data
        return theta[0] * jnp.exp(-theta[1] * x) + theta[2] * jnp.cumsum(x) ** 0.5 - y

    x = jnp.linspace(0.0, 3.0, 40)
    data = (x, jnp.sin(x))
    theta = jnp.array([1.3, 0.7, -0.2])
    wrapped = dense_jacobian(residuals)
    assert wrapped is dense_jacobian(residuals)
    with o.float64():
        theta, data = jnp.asarray(theta, float), tuple(jnp.asarray(d, float) for d in data)
        np.testing.assert_allclose(wrapped(theta, data), residuals(theta, data), rtol=1e-14)
        np.testing.assert_allclose(
            jax.jacfwd(wrapped)(theta, data), jax.jacfwd(residuals)(theta, data), rtol=1e-12
        )
        loss = lambda f: lambda t: jnp.sum(f(t, data) ** 2)  # noqa: E731
        np.testing.assert_allclose(
            jax.grad(loss(wrapped))(theta), jax.grad(loss(residuals))(theta), rtol=1e-12
        )


def test_starts_run_side_by_side_give_what_they_give_one_by_one(monkeypatch):
    """``levenberg_marquardt`` runs its starts on threads, each in its own float64 context: the
    results equal those of one start after another on one core (to the last bit), in float64,
    a diverging start included (a non-finite cost, not an exception)."""
    import jax.numpy as jnp

    from optsched import _threads
    from optsched.loss_models import fitting

    def residuals(theta, data):
        x, y = data
        return theta[0] * jnp.exp(-theta[1] * x) + theta[2] - y

    x = np.linspace(0.0, 4.0, 50)
    data = (x, 2.0 * np.exp(-0.8 * x) + 0.3)
    starts = [np.array([1.0, 0.5, 0.0]), np.array([3.0, 2.0, 1.0]), np.array([1.0, np.nan, 0.0])]
    monkeypatch.setattr(_threads, "cores", lambda: 2)
    side_by_side = fitting.levenberg_marquardt(residuals, starts, data, 30)
    monkeypatch.setattr(_threads, "cores", lambda: 1)
    one_by_one = fitting.levenberg_marquardt(residuals, starts, data, 30)
    for (t2, c2, _), (t1, c1, _) in zip(side_by_side, one_by_one, strict=True):
        assert t2.dtype == np.float64
        np.testing.assert_array_equal(np.asarray(t2), np.asarray(t1))
        assert c2 == c1 or (np.isnan(c2) and np.isnan(c1))
    assert side_by_side[0][1] < 1e-20 and np.isnan(side_by_side[2][1])


def test_side_by_side_raises_the_loops_first_error_and_drops_the_rest(monkeypatch):
    """Item 0 fails at once while the other thread is busy: the error reaches the caller and the
    items not yet started are never run."""
    import threading
    import time

    from optsched import _threads

    monkeypatch.setattr(_threads, "cores", lambda: 2)
    started = []
    lock = threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        if i == 0:
            raise ValueError("item 0")
        time.sleep(1.0)  # busy long after item 0 failed
        return i

    with pytest.raises(ValueError, match="item 0"):
        _threads.map_on_cores(work, range(8))
    # two threads: 0 and 1 ran, 2 too if the freed thread took it before the cancellation
    # (a race either way), 3..7 were dropped
    assert {0, 1} <= set(started) <= {0, 1, 2}
    assert _threads.map_on_cores(lambda x: x * x, range(5)) == [0, 1, 4, 9, 16]


def _two_exponentials(theta, data):
    import jax.numpy as jnp

    x, y = data
    return theta[0] * jnp.exp(-theta[1] * x) + theta[2] * jnp.exp(-theta[3] * x) - y


@pytest.mark.parametrize("polish", ["levenberg_marquardt", "dogleg"])
def test_polishing_reaches_the_least_squares_optimum(polish):
    """A sum of two exponentials (nearly degenerate rates: an ill-conditioned fit) polished from
    one start by either solver, to convergence (no early stop): the cost equals SciPy's least
    squares to 1e-10 relative (an independent reference), the parameters agree to 1e-6."""
    from scipy.optimize import least_squares

    from optsched.loss_models import fitting

    x = np.linspace(0.0, 6.0, 80)
    y = 2.0 * np.exp(-0.5 * x) + np.exp(-0.8 * x) + 1e-3 * np.sin(7.0 * x)
    start = np.array([1.5, 0.4, 1.5, 1.2])
    with o.float64():
        theta, cost, J = fitting.least_squares_fit(
            _two_exponentials, [start], (x, y), max_steps=400, chi2_tol=0.0, polish=polish
        )
    ref = least_squares(  # in NumPy, float64
        lambda t: t[0] * np.exp(-t[1] * x) + t[2] * np.exp(-t[3] * x) - y,
        start,
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    assert cost == pytest.approx(2.0 * ref.cost, rel=1e-10)  # SciPy's cost is half the sum
    np.testing.assert_allclose(np.asarray(theta), ref.x, rtol=1e-6)
    assert J.shape == (80, 4)


def test_a_polishing_round_the_dogleg_fails_is_run_by_levenberg_marquardt(monkeypatch):
    """Where the dogleg returns a non-finite cost, the round is redone by Levenberg-Marquardt:
    the fit ends where Levenberg-Marquardt alone ends."""
    from optsched.loss_models import fitting

    x = np.linspace(0.0, 6.0, 80)
    y = 2.0 * np.exp(-0.5 * x) + np.exp(-0.8 * x)
    start = np.array([1.5, 0.4, 1.5, 1.2])
    lm = fitting._solve_steps
    calls = []

    def failing_dogleg(residuals, theta, data, steps, solver="levenberg_marquardt", stall=0.0):
        calls.append(solver)
        if solver == "dogleg":
            return theta, float("nan"), False
        return lm(residuals, theta, data, steps, solver, stall)

    with o.float64():
        expected = lm(_two_exponentials, start, (x, y), 100)
        monkeypatch.setattr(fitting, "_solve_steps", failing_dogleg)
        theta, cost, _ = fitting.least_squares_fit(
            _two_exponentials, [start], (x, y), max_steps=100, polish="dogleg"
        )
    assert calls == ["dogleg", "levenberg_marquardt"]
    with pytest.raises(ValueError, match="polish must be one of"):
        fitting.least_squares_fit(_two_exponentials, [start], (x, y), polish="newton")
    np.testing.assert_array_equal(np.asarray(theta), np.asarray(expected[0]))
    assert cost == expected[1]


def test_a_stalled_solver_stops_near_the_optimum_and_otherwise_changes_nothing():
    """``StopWhenStalled``: Gauss-Newton held to 5% steps crawls (about 400 steps to converge
    on two exponentials); told to stop when 25 steps lower the sum of squares by less than
    ``tol`` of it, it stops earlier, within ``3 tol`` of the converged cost (a geometric crawl
    leaves about ``2.5 tol`` behind); with ``tol = 0`` it takes the very same steps."""
    import equinox as eqx
    import jax.numpy as jnp
    import optimistix as optx

    from optsched.loss_models._stall import StopWhenStalled
    from optsched.loss_models.fitting import _sum_squares, dense_jacobian

    x = np.linspace(0.0, 6.0, 80)
    y = 2.0 * np.exp(-0.5 * x) + np.exp(-0.8 * x) + 1e-3 * np.sin(7.0 * x)
    slow = eqx.tree_at(lambda s: s.search, optx.GaussNewton(1e-10, 1e-10), optx.LearningRate(0.05))

    def run(solver):
        sol = optx.least_squares(
            dense_jacobian(_two_exponentials),
            solver,
            jnp.array([1.5, 0.4, 1.5, 1.2]),
            args=(jnp.asarray(x), jnp.asarray(y)),
            max_steps=2000,
            throw=False,
        )
        cost = float(_sum_squares(_two_exponentials, sol.value, (x, y)))
        return int(sol.stats["num_steps"]), cost, np.asarray(sol.value)

    with o.float64():
        steps, cost, theta = run(slow)
        same = run(StopWhenStalled(slow, jnp.asarray(0.0), 25))
        stopped = run(StopWhenStalled(slow, jnp.asarray(1e-4), 25))
    assert steps > 300 and same[0] == steps
    np.testing.assert_array_equal(same[2], theta)
    assert stopped[0] < 0.7 * steps
    assert cost < stopped[1] <= cost * (1 + 3e-4)
