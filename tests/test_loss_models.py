"""The loss models behind one interface: multi-power law, convex bound, gradient-norm refinement;
solving and exporting through the same calls."""

import jax.numpy as jnp
import numpy as np
import pytest

import optsched as o
from optsched.loss_models.convex import (
    ConvexBound,
    convex_bound,
    fit_convex_bound,
    refine_from_grad_norms,
)
from optsched.loss_models.fitted import PilotRun
from optsched.loss_models.multipower import MultiPowerLaw, fit_multi_power_law

T = 200


def pilot_runs(truth, peak, noise=0.002, seed=0):
    rng = np.random.default_rng(seed)
    steps = np.arange(4, T + 1, 4)
    runs = []
    for sched in (o.Schedule.constant(peak, T), o.family("wsd", peak, T, cooldown=0.3)):
        clean = truth.predict(sched, steps)
        runs.append(PilotRun(sched, steps, clean * np.exp(noise * rng.standard_normal(steps.size))))
    return runs


def test_convex_bound_matches_its_definition_for_two_steps():
    lr = np.array([0.3, 0.2])
    u, v = 2.0, 0.5
    # T = 2: (u + v (a^2 + b^2)) / (2 (a + b)) + v/2 * a / b * (a^2 + b^2) / (a + b)
    expected = (u + v * 0.13) / (2 * 0.5) + 0.5 * v * (0.3 / 0.2) * 0.13 / 0.5
    assert float(convex_bound(lr, u, v)[-1]) == pytest.approx(expected, rel=1e-12)


def test_convex_optimal_peak_is_the_tuned_one_and_the_optimum_is_near_linear_decay():
    model = ConvexBound(1.0, 1.0, 0.0)
    shape = np.asarray(o.family("linear", 1.0, T).lr_at(np.arange(T)))
    peak = model.optimal_peak(shape)
    final = [float(model.predict(o.family("linear", peak * f, T))[-1]) for f in (0.95, 1, 1.05)]
    assert final[1] < final[0] and final[1] < final[2]
    sol = o.solve(model, T, 1.0)
    assert sol.baselines["linear"].peak_lr == pytest.approx(peak, rel=0.01)
    # the optimum under the bound is linear decay to within 2% in loss and 0.1 of the peak in
    # shape (Defazio et al. 2023: linear decay is the worst-case optimum)
    assert 0 <= sol.margins()["linear"] < 0.02
    lr = np.asarray(sol.schedule.lr_at(np.arange(T)))
    assert np.max(np.abs(lr / lr.max() - shape)) < 0.1
    assert sol.margins()["constant"] > 0.2 and sol.margins()["cosine"] > sol.margins()["linear"]
    # and it exports like any solution
    lr = o.to_optax(sol)
    assert float(lr(0)) == pytest.approx(float(sol.schedule.lr_at(0)))


def test_refinement_of_constant_norms_is_linear_decay():
    sched = refine_from_grad_norms(np.ones(T), 0.5)
    t = np.arange(T)
    np.testing.assert_allclose(np.asarray(sched.lr_at(t)), 0.5 * (T - 1 - t) / (T - 1), atol=1e-12)
    # growing norms late in training move the rate down earlier than linear
    rising = refine_from_grad_norms(np.linspace(1.0, 3.0, T), 0.5)
    assert float(rising.lr_at(T // 2)) < 0.5 * 0.5
    with pytest.raises(ValueError, match="positive"):
        refine_from_grad_norms(np.zeros(T), 0.5)


def test_convex_bound_fit_recovers_synthetic_truth():
    truth = ConvexBound(0.5, 0.02, 1.0, 1e-3)
    fitted = fit_convex_bound(pilot_runs(truth, 1e-3))
    assert fitted.u == pytest.approx(0.5, rel=0.1)
    assert fitted.v == pytest.approx(0.02, rel=0.1)
    assert fitted.loss_floor == pytest.approx(1.0, rel=0.01)


def test_multi_power_law_fit_predicts_held_out_schedules():
    truth = MultiPowerLaw(jnp.array([2.0, 1.0, 0.5, 0.6, 2.0, 0.6, 0.5]), 1e-3, {})
    said = []
    fitted = fit_multi_power_law(pilot_runs(truth, 1e-3), progress=said.append)
    assert fitted.residual_rms < 0.003  # the noise is 0.002
    assert said[0].startswith("4 starts, 25 steps each: best sum of squares")
    assert all(m.startswith("polishing: ") for m in said[1:])  # one line per round
    for sched in (o.family("cosine", 1e-3, T), o.family("linear", 1e-3, T)):
        assert fitted.extrapolation(sched) is None
        assert fitted.predict(sched)[-1] == pytest.approx(truth.predict(sched)[-1], rel=0.01)
    # the pilots all peak at 1e-3: another peak is flagged as an extrapolation
    assert fitted.pilot_peaks == (1e-3, 1e-3) and fitted.pilot_floor == 0.0  # WSD ends at 0
    assert "peaks at 0.0007" in fitted.extrapolation(o.family("linear", 7e-4, T))
    # ... and so is a rise after the peak (the law was fitted on decays): a dip to 1e-5 for ten
    # steps and back is flagged, a rise within 1% of the peak (logging noise) is not
    lr = np.full(T, 1e-3)
    lr[50:60] = 1e-5
    dip = fitted.extrapolation(o.Schedule(np.arange(T), lr, horizon=T))
    assert dip is not None and "rises again after its peak (first at step 60" in dip
    lr[50:60] = 0.995e-3
    assert fitted.extrapolation(o.Schedule(np.arange(T), lr, horizon=T)) is None
    # the law's defining pieces: a constant rate has no loss reduction term
    const = o.Schedule.constant(1e-3, T)
    p = truth.values()
    S = np.arange(1, T + 1)
    np.testing.assert_allclose(
        truth.predict(const)[1:], p["L0"] + p["A"] * S ** -p["alpha"], rtol=1e-12
    )
    sol = o.solve(fitted, T, 1e-3, optimiser=o.LBFGS(max_knots=32))
    assert sol.final_loss <= sol.best_baseline().final_loss * (1 + 1e-12)


@pytest.mark.parametrize(
    "model",
    [
        o.FittedProblem(
            o.PowerLawProblem(2.0, 1.5, sigma=0.3), 400.0, 1.5, 0.8, {}, None, 0.0, max_time=100.0
        ),
        MultiPowerLaw(jnp.array([2.0, 1.0, 0.5, 0.6, 2.0, 0.6, 0.5]), 1e-3, {}),
        ConvexBound(0.5, 0.02, 1.0, 1e-3),
    ],
    ids=["power-law RF", "multi-power law", "convex bound"],
)
def test_every_loss_model_solves_and_exports_through_the_same_calls(model):
    sol = o.solve(model, 100, 1e-3, optimiser=o.LBFGS(max_knots=16))
    # (FittedProblem.predict builds its own mode grid: equal to curve() to about 1e-6)
    assert sol.final_loss <= sol.best_baseline().final_loss * (1 + 1e-6)
    assert set(sol.baselines) == {"constant", "power_law", "cosine", "linear", "wsd"}
    with o.float64():
        lr = np.asarray(o.to_optax(sol)(jnp.arange(100)))
    np.testing.assert_array_equal(lr, np.asarray(sol.schedule.lr_at(np.arange(100))))
    lr32 = o.to_optax(sol)(jnp.arange(100))  # a float32 training loop gets float32 rates
    assert lr32.dtype == jnp.float32 and np.array_equal(np.asarray(lr32), lr.astype(np.float32))
    assert lr.max() <= 1e-3 * (1 + 1e-12) and lr.min() >= 0
    # the solver's modes are laid out for lr_max * T, predict's for the schedule's own sum(lr):
    # two quadratures of one model, equal to about 1e-6 (exact for the per-step models)
    rel = 2e-6 if isinstance(model, o.FittedProblem) else 1e-9
    assert float(model.predict(sol.schedule)[-1]) == pytest.approx(sol.final_loss, rel=rel)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(u=-1.0, v=1.0, loss_floor=0.0), "u must be a positive number"),
        (dict(u=1.0, v=float("nan"), loss_floor=0.0), "v must be a positive number"),
        (dict(u=1.0, v=1.0, loss_floor=float("inf")), "loss_floor must be finite"),
        (dict(u=1.0, v=1.0, loss_floor=0.0, lr_unit=0.0), "lr_unit must be a positive number"),
    ],
)
def test_convex_bound_refuses_meaningless_constants(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        ConvexBound(**kwargs)


def test_decay_only_learning_rates_never_rise_and_solve_the_law_within_its_domain(tmp_path):
    """``LearningRate(decay_only=True, lr_min=...)``: any parameters give non-increasing block
    values between the floor and the cap; a non-increasing schedule is recovered by
    ``initial`` (to its clipping); solved on a multi-power law with the pilots' floor, the
    schedule never rises nor leaves the floor, the baselines decay to the floor with the
    losses the law gives them, and the result is no worse than the best of them."""
    import jax.numpy as jnp

    from optsched.loss_models.store import load_model, save_model
    from optsched.schedule import Blocks

    theta = jnp.asarray(np.random.default_rng(0).normal(0.0, 3.0, (1, 40)))
    blocks = Blocks(jnp.ones(40), jnp.arange(40))
    for floor in (0.0, 0.3):
        controls = o.LearningRate(lr_max=2.0, decay_only=True, lr_min=floor)
        lr = np.asarray(controls.values(theta, blocks)["lr"])
        assert np.all(np.diff(lr) <= 0) and np.all((lr >= floor) & (lr <= 2.0))
        free = np.asarray(o.LearningRate(lr_max=2.0, lr_min=floor).values(theta, blocks)["lr"])
        assert np.all((free >= floor) & (free <= 2.0)) and np.any(np.diff(free) > 0)
    with pytest.raises(ValueError, match="lr_min"):
        o.LearningRate(lr_max=1.0, lr_min=1.0)
    with pytest.raises(ValueError, match="lr_min"):
        o.LearningRate(lr_min=-0.1)
    controls = o.LearningRate(lr_max=2.0, decay_only=True)
    steps = np.array([0, 10, 20, 30, 40, 50, 60, 70, 80, 99])
    target = o.Schedule(
        steps, np.array([2.0, 2.0, 1.5, 1.5, 1.0, 0.5, 0.5, 0.2, 0.1, 0.1]), horizon=100
    )
    theta = controls.initial(target, steps, 12, 1.0)
    back = np.asarray(controls.values(theta, None)["lr"])[:10]
    np.testing.assert_allclose(back, target.lr, rtol=2e-3)  # constant stretches start at 0.9999
    floor = 2e-4
    truth = MultiPowerLaw(
        jnp.array([2.0, 1.0, 0.5, 0.6, 2.0, 0.6, 0.5]), 1e-3, {}, pilot_floor=floor
    )
    save_model(truth, tmp_path / "m.json")
    assert load_model(tmp_path / "m.json").pilot_floor == floor
    # below the pilots' lowest rate the law was not measured: flagged
    why = truth.extrapolation(o.family("cosine", 1e-3, T))
    assert why is not None and "below the pilots' lowest rate 0.0002" in why
    assert truth.extrapolation(o.family("cosine", 1e-3, T, lr_min=floor)) is None
    controls = o.LearningRate(lr_max=1e-3, decay_only=True, lr_min=floor)
    sol = o.solve(truth, T, controls, optimiser=o.LBFGS(max_knots=32))
    lr = np.asarray(sol.schedule.lr)
    assert np.all(np.diff(lr) <= 0) and lr.min() >= floor * (1 - 1e-12)
    assert sol.stats["lr_min"] == floor and sol.stats["lr_max"] == 1e-3
    assert sol.final_loss <= sol.best_baseline().final_loss * (1 + 1e-12)
    assert truth.extrapolation(sol.schedule) is None
    for base in sol.baselines.values():
        assert np.min(base.schedule.lr) >= floor * (1 - 1e-12)
        assert float(truth.predict(base.schedule)[-1]) == pytest.approx(base.final_loss, rel=1e-9)
    assert sol.baselines["cosine"].schedule.lr[-1] == pytest.approx(floor, rel=1e-12)
