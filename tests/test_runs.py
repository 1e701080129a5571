"""Real runs: the loaders (CSV, weights-and-biases JSON, malformed files), evaluation at logged
steps only, model files, and `optsched fit ... --save-model` / `optsched predict --json` on an
excerpt of the multi-power-law authors' 25M curves (tests/data/multipowerlaw_25, MIT)."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optsched as o
from optsched.cli import main
from optsched.loss_models.convex import convex_bound, convex_bound_at
from optsched.loss_models.multipower import (
    EXACT_TERMS,
    _mpl_at,
    _mpl_curve,
    drop_steps,
    drop_terms,
)
from optsched.loss_models.store import ModelFileError, load_model, save_model
from optsched.runs import RunFileError, RunFileWarning, rates_from_log, read_run

EXCERPT = pathlib.Path(__file__).parent / "data" / "multipowerlaw_25"


def test_csv_run_rebuilds_every_rate_by_the_documented_rule():
    [run] = read_run(EXCERPT / "cosine_24000.csv")
    rows = np.loadtxt(EXCERPT / "cosine_24000.csv", delimiter=",", skiprows=1)
    steps, lr = rows[:, 0].astype(int), rows[:, 1]
    assert run.name == "cosine_24000" and run.schedule.horizon == steps[-1]
    assert run.schedule.units == "real"
    per_step = np.asarray(run.schedule.lr_at(np.arange(run.schedule.horizon)))
    # logged rates exactly at logged steps, a linear warm-up from 0 before the first log
    np.testing.assert_allclose(per_step[steps[:-1]], lr[:-1], rtol=1e-12)
    np.testing.assert_allclose(per_step[:5], lr[0] * np.arange(5) / steps[0], rtol=1e-12)
    assert 0 < run.warmup <= steps[0]  # the warm-up is schedule, not data
    np.testing.assert_array_equal(run.steps, steps)


def test_rates_from_log_holds_the_last_rate_and_ramps_between_logs():
    lr = rates_from_log([0, 4], [1.0, 0.0], 8)
    np.testing.assert_allclose(lr, [1, 0.75, 0.5, 0.25, 0, 0, 0, 0])
    # a run logged from a branch point: warm-up over its known length, then the first rate held
    lr = rates_from_log([6, 8], [1.0, 0.5], 10, warmup=3)
    np.testing.assert_allclose(lr, [0, 1 / 3, 2 / 3, 1, 1, 1, 1, 0.75, 0.5, 0.5])


def test_wandb_branch_uses_the_configured_warmup(tmp_path):
    path = _wandb(tmp_path, config={"iterations": 40, "warmup_steps": 5})
    [run] = read_run(path, loss="train")
    lr = np.asarray(run.schedule.lr_at(np.arange(40)))
    np.testing.assert_allclose(lr[:6], [0, 2e-4, 4e-4, 6e-4, 8e-4, 1e-3], rtol=1e-12)
    assert np.all(lr[5:21] == 1e-3) and run.warmup == 5


def _wandb(tmp_path, **overrides):
    data = {
        "name": "x",
        "config": {"iterations": 40},
        "history": {
            "train": {
                "iter": [10, 20, 30, 40],
                "train_lr": [1e-3, 1e-3, 5e-4, float("nan")],
                "train_loss": [5.0, 4.0, 3.5, 3.2],
            },
            "val": {"iter": [0, 20, 40], "val_loss": [9.0, 4.1, 3.3]},
        },
    }
    data.update(overrides)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return path


def test_wandb_export_reads_validation_or_training_loss(tmp_path):
    path = _wandb(tmp_path)
    [val] = read_run(path)
    assert val.schedule.horizon == 40 and val.steps.tolist() == [0, 20, 40]
    assert val.name == "run" and val.loss.tolist() == [9.0, 4.1, 3.3]
    [train] = read_run(path, loss="train")
    assert train.steps.tolist() == [10, 20, 30, 40]
    # the NaN rate logged at step 40 is dropped; the last rate is held
    assert float(val.schedule.lr_at(39)) == pytest.approx(5e-4)


@pytest.mark.parametrize(
    "content",
    [
        "Step, LR, Loss\n0,0.1,3.0\n10,0.1,2.5\n20,0.1,2.2\n",  # spreadsheet-style names
        "step\tlr\tloss\n0\t0.1\t3.0\n10\t0.1\t2.5\n20\t0.1\t2.2\n",  # tab-separated
        "step;lr;loss\n0;0.1;3.0\n\n10;0.1;2.5\n20;0.1;2.2\n",  # semicolons, a blank line
        "\ufeffstep,lr,loss\r\n0,0.1,3.0\r\n10,0.1,2.5\r\n20,0.1,2.2\r\n",  # Excel: BOM, CRLF
    ],
)
def test_csv_headers_and_separators_that_spreadsheets_write_are_read(tmp_path, content):
    path = tmp_path / "run.csv"
    path.write_bytes(content.encode("utf-8"))
    [run] = read_run(path)
    assert run.steps.tolist() == [0, 10, 20] and run.loss.tolist() == [3.0, 2.5, 2.2]
    assert float(run.schedule.lr_at(15)) == pytest.approx(0.1)


def test_a_bad_value_after_a_blank_line_names_its_line(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text("step,lr,loss\n0,0.1,3.0\n\n10,x,2.5\n")
    with pytest.raises(RunFileError, match="line 4: lr must be a number"):
        read_run(path)


def test_wandb_nulls_are_steps_that_logged_nothing_and_infinities_are_refused(tmp_path):
    history = {
        "train": {
            "iter": [10, 20, 30, 40],
            "train_lr": [1e-3, None, 5e-4, 5e-4],
            "train_loss": [5.0, 4.0, 3.5, 3.2],
        },
        "val": {"iter": [0, 20, 30, 40], "val_loss": [9.0, None, 3.5, 3.3]},
    }
    [run] = read_run(_wandb(tmp_path, history=history))
    assert run.steps.tolist() == [0, 30, 40] and run.loss.tolist() == [9.0, 3.5, 3.3]
    nulls = {**history, "val": {"iter": [0, 20], "val_loss": [None, None]}}
    with pytest.warns(RunFileWarning, match="logs no validation loss"):  # training, said
        [train] = read_run(_wandb(tmp_path, history=nulls))
    assert train.steps.tolist() == [10, 20, 30, 40] and train.loss.tolist()[0] == 5.0
    history["val"]["val_loss"][2] = float("inf")
    with pytest.raises(RunFileError, match="infinite value at iter 30"):
        read_run(_wandb(tmp_path, history=history))


def test_a_pilot_run_at_a_zero_rate_is_refused_by_name(tmp_path):
    zero, good = tmp_path / "zero.csv", tmp_path / "good.csv"
    zero.write_text("step,lr,loss\n0,0,3.0\n10,0,2.9\n20,0,2.8\n")
    good.write_text("step,lr,loss\n0,0.1,3.0\n10,0.1,2.5\n20,0.1,2.2\n")
    with pytest.raises(ValueError, match="run 'zero' has a zero learning rate throughout"):
        o.fit_convex_bound(read_run(zero) + read_run(good))


def test_a_restarted_wandb_run_is_read_as_the_attempt_that_finished(tmp_path):
    # the export lists the resumed attempt (from step 30) first and the first attempt (to 40,
    # where it crashed) after it; the repeated steps 30 and 40 are the finished attempt's
    history = {
        "train": {
            "iter": [30, 40, 50, 60, 10, 20, 30, 40],
            "train_lr": [1e-3] * 8,
            "train_loss": [3.5, 3.2, 3.0, 2.9, 5.0, 4.0, 3.6, 3.3],
        },
        "val": {"iter": [0, 20, 40, 60, 0, 20], "val_loss": [9.0, 4.1, 3.3, 2.95, 9.0, 4.1]},
    }
    path = _wandb(tmp_path, history=history, config={"iterations": 60})
    with pytest.warns(RunFileWarning, match=r"2 segments.*2 of 8 rows left out"):
        [train] = read_run(path, loss="train")
    assert train.steps.tolist() == [10, 20, 30, 40, 50, 60]
    assert train.loss.tolist() == [5.0, 4.0, 3.5, 3.2, 3.0, 2.9]
    with pytest.warns(RunFileWarning) as caught:
        [val] = read_run(path)
    assert sorted(str(w.message).split(": ")[1].split(" holds")[0] for w in caught) == [
        "history.train",
        "history.val",
    ]
    assert val.steps.tolist() == [0, 20, 40, 60] and val.loss.tolist() == [9.0, 4.1, 3.3, 2.95]


@pytest.mark.parametrize(
    "content, message",
    [
        ("step,lr\n1,0.1\n", "missing column(s) loss"),
        ("step,lr,loss\n1,x,1\n2,0.1,1\n", "line 2: lr must be a number"),
        ("step,lr,loss\n1,0.1,nan\n2,0.1,1\n", "loss must be finite"),
        ("step,lr,loss\n1,0.1,1\n1,0.1,0.9\n", "steps must increase"),
        ("step,lr,loss\n1,0.1,1\n2,0.1,-1\n", "losses must be positive"),
        ("step,lr,loss\n1,0.1,1\n", "at least two logged losses"),
        ("step,lr,loss\n1.5,0.1,1\n2,0.1,1\n", "step must be an integer"),
        ("step,lr,loss\n1,-0.1,1\n2,0.1,1\n", "learning rates must be >= 0"),
        ("step,lr,loss\n1,0.1,1\n2,0.1,0.9,7\n", "line 3: more fields than the header's 3"),
        ("step,lr,loss\n1,0.1,1\n1000000000000,0.1,0.9\n", "longer than optsched reads"),
    ],
)
def test_malformed_csv_is_refused_with_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(RunFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_run(path)


def test_malformed_json_and_bytes_are_refused(tmp_path):
    with pytest.raises(RunFileError, match="no history.train"):
        read_run(_wandb(tmp_path, history={}))
    bad = tmp_path / "b.csv"
    bad.write_bytes(b"step,lr,loss\n1,0.1,\xff\n")
    with pytest.raises(RunFileError, match="not UTF-8"):
        read_run(bad)


def test_the_multi_power_floor_moves_with_the_peak_rate():
    # L0 is the floor at the pilots' peak (rate 1); a schedule peaking at 2 sits B higher once
    # that change has relaxed (G -> 1: here C is large) and, once a decay to rate 1 has
    # relaxed too, at the same loss as a run held at 1 with the same area S_1
    L0, A, alpha, B = 3.0, 0.5, 0.4, 0.2
    params = np.array([L0, A, alpha, B, 1e6, 1.0, 0.0])
    with o.float64():
        one = np.asarray(_mpl_at(params, np.ones(100), [100]))[0]
        two = np.asarray(_mpl_at(params, np.full(100, 2.0), [50]))[0]
        np.testing.assert_allclose(one, L0 + A * 100.0**-alpha, rtol=1e-13)
        np.testing.assert_allclose(two, L0 + B + A * 100.0**-alpha, rtol=1e-7)
        # with a slow relaxation (small C) the change of peak has not relaxed yet
        slow = params.copy()
        slow[4] = 1e-3
        x = 1e-3 * 2.0**-0.0 * 100.0
        G = 1.0 - (x + 1.0) ** -1.0
        np.testing.assert_allclose(
            np.asarray(_mpl_at(slow, np.full(100, 2.0), [50]))[0],
            L0 + B * G + A * 100.0**-alpha,
            rtol=1e-12,
        )
        down = np.concatenate([np.full(25, 2.0), np.ones(50)])
        np.testing.assert_allclose(np.asarray(_mpl_at(params, down, [75]))[0], one, rtol=1e-6)


def test_a_flicker_to_zero_and_back_buys_nothing():
    # one step at a tiny rate, then back: the drop and the rise relax alike (at the lower rate),
    # so the law cannot be gamed by flickering schedules (an optimiser found them)
    params = np.array([3.0, 0.5, 0.4, 0.2, 0.5, 0.6, 2.0])  # gamma = 2: tiny rates relax at once
    flat = np.ones(200)
    flicker = flat.copy()
    flicker[100] = 1e-9
    with o.float64():
        steady = float(_mpl_at(params, flat, [200])[0])
        gamed = float(_mpl_at(params, flicker, [200])[0])
        grouped = float(_mpl_at(params, flicker, [200], drop_terms(flicker, [200]))[0])
    assert gamed >= steady  # it lost a step's area and gained nothing
    assert gamed - steady < 1e-3 and grouped == pytest.approx(gamed, rel=1e-9)


def test_curves_at_logged_steps_equal_the_full_curves():
    rng = np.random.default_rng(0)
    lr = np.concatenate([np.linspace(0, 1, 20), np.linspace(1, 0.1, 180)]) * 3e-4
    steps = np.sort(rng.choice(np.arange(1, 201), 15, replace=False))
    with o.float64():
        params = np.array([3.0, 0.5, 0.4, 0.2, 2.0, 0.5, 0.6])
        norm = lr / 3e-4
        full = np.asarray(_mpl_curve(params, norm))[steps]
        np.testing.assert_allclose(_mpl_at(params, norm, steps), full, rtol=1e-13)
        # restricted to the steps whose rate changes (what fits use): the same sum
        drops = drop_steps(norm)
        assert drops.size == 179 and drops[0] == 21
        exact = drop_terms(norm, steps, ratio=None)
        np.testing.assert_array_equal(exact.last, drops)
        np.testing.assert_allclose(_mpl_at(params, norm, steps, exact), full, rtol=1e-13)
        # grouped terms (between logged steps, narrow near each one): midpoint-rule accuracy
        grouped = drop_terms(norm, steps)
        assert grouped.weight.size < drops.size
        np.testing.assert_allclose(grouped.weight.sum(), exact.weight.sum(), rtol=1e-13)
        np.testing.assert_allclose(_mpl_at(params, norm, steps, grouped), full, rtol=1e-5)
        # predictions and the parameter-dependent curve (ranking): every term for a few steps,
        # grouped terms (over EXACT_TERMS step-term pairs) for a long curve logged often
        law = o.MultiPowerLaw(jnp.asarray(params), 3e-4, {})
        per_step = o.Schedule(np.arange(lr.size), lr, interpolation="previous")
        np.testing.assert_allclose(law.predict(per_step, steps), full, rtol=1e-13)
        np.testing.assert_allclose(law.curve_at_parameters(params, lr, steps), full, rtol=1e-13)
        # concrete parameters run in NumPy, traced ones (a ranking's derivatives) compiled
        traced = jax.jit(lambda p: law.curve_at_parameters(p, lr, steps))(jnp.asarray(params))
        np.testing.assert_allclose(traced, full, rtol=1e-13)
        assert isinstance(law.curve_at_parameters(params, lr, steps), np.ndarray)
        long = 3e-4 * (1 - 0.9 * np.arange(20000) / 20000)
        logged = np.arange(20, 20001, 20)
        assert logged.size * drop_steps(long / 3e-4).size > EXACT_TERMS
        exact_long = np.asarray(_mpl_at(params, long / 3e-4, logged))
        long_sched = o.Schedule(np.arange(long.size), long, interpolation="previous")
        grouped_long = law.predict(long_sched, logged)
        np.testing.assert_allclose(grouped_long, exact_long, rtol=1e-5)
        traced_long = jax.jit(lambda p: law.curve_at_parameters(p, long, logged))(params)
        np.testing.assert_allclose(traced_long, grouped_long, rtol=1e-13)
        assert np.max(np.abs(grouped_long / exact_long - 1)) > 1e-13  # the grouped sum ran
        flat = np.ones(50)
        assert drop_steps(flat).size == 0
        np.testing.assert_allclose(
            _mpl_at(params, flat, [3, 7], drop_terms(flat, [3, 7])),
            np.asarray(_mpl_curve(params, flat))[[3, 7]],
            rtol=1e-13,
        )
        np.testing.assert_allclose(
            convex_bound_at(norm, steps, 1.0, 0.1),
            np.asarray(convex_bound(norm, 1.0, 0.1))[steps - 1],
            rtol=1e-13,
        )


@pytest.fixture(scope="module")
def fitted_convex(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fit")
    model_path = folder / "m.json"
    runs = [str(EXCERPT / f"{n}.csv") for n in ("cosine_24000", "constant_24000", "wsdcon_9")]
    assert (
        main(["fit", *runs, "--model", "convex", "--save-model", str(model_path), "--quiet"]) == 0
    )
    return model_path


def test_fit_saves_a_model_that_predict_reads(fitted_convex, capsys):
    model = load_model(fitted_convex)
    assert isinstance(model, o.ConvexBound) and model.u > 0 and model.v > 0
    held_out = EXCERPT / "wsdcon_3.csv"
    capsys.readouterr()
    assert main(["predict", str(fitted_convex), str(held_out), "--json"]) == 0
    [out] = json.loads(capsys.readouterr().out)
    assert set(out) == {
        "run",
        "final_step",
        "predicted_final_loss",
        "observed_final_loss",
        "steps",
        "predicted",
        "extrapolation",
    }
    assert out["extrapolation"] is None  # the held-out run peaks where the pilots did
    assert model.pilot_peaks == (3e-4, 3e-4)
    rows = np.loadtxt(held_out, delimiter=",", skiprows=1)
    assert out["steps"] == rows[:, 0].astype(int).tolist()
    assert out["observed_final_loss"] == rows[-1, 2] and out["final_step"] == rows[-1, 0]
    predicted = np.asarray(out["predicted"])
    assert predicted[-1] == out["predicted_final_loss"]
    # a held-out schedule of the same family: predicted to a few percent at every logged step
    assert np.max(np.abs(predicted / rows[:, 2] - 1)) < 0.05
    # the file holds the model exactly
    [run] = read_run(held_out)
    np.testing.assert_allclose(predicted, model.predict(run.schedule, run.steps), rtol=1e-12)


def test_predict_reads_a_schedule_file_and_model_files_are_checked(fitted_convex, tmp_path, capsys):
    model = load_model(fitted_convex)
    sol = o.solve(model, 3000, 3e-4, optimiser=o.LBFGS(max_knots=16))
    sol.save(tmp_path / "s.json")
    capsys.readouterr()
    assert main(["predict", str(fitted_convex), str(tmp_path / "s.json"), "--json"]) == 0
    [out] = json.loads(capsys.readouterr().out)
    assert out["observed_final_loss"] is None and out["final_step"] == 3000
    assert out["predicted_final_loss"] == pytest.approx(sol.final_loss, rel=1e-9)
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "format": "optsched.model/1",
                "kind": "ConvexBound",
                "u": -1,
                "v": 1,
                "loss_floor": 1,
                "lr_unit": 1,
            }
        )
    )
    with pytest.raises(ModelFileError, match="u must be a positive number"):
        load_model(bad)
    save_model(model, tmp_path / "again.json")
    again = load_model(tmp_path / "again.json")
    np.testing.assert_array_equal(again.predict(sol.schedule), model.predict(sol.schedule))


def test_a_csv_without_rates_takes_them_from_a_named_schedule(tmp_path, capsys):
    rows = np.loadtxt(EXCERPT / "constant_24000.csv", delimiter=",", skiprows=1)
    run = tmp_path / "no_lr.csv"
    run.write_text("step,loss\n" + "".join(f"{int(s)},{y}\n" for s, _, y in rows))
    model = tmp_path / "m.json"
    argv = ["fit", str(run), "--model", "convex", "--save-model", str(model), "--quiet"]
    assert main(argv) == 2 and "--schedule" in capsys.readouterr().err
    assert main([*argv, "--schedule", "constant:3e-4:24000"]) == 0
    # the rates are the named schedule's (no warm-up, unlike the logged run), and the fit
    # follows the losses it was given
    fitted = load_model(model)
    assert fitted.pilot_peaks == (3e-4, 3e-4)
    capsys.readouterr()
    assert main(["predict", str(model), str(run), "--schedule", "constant:3e-4:24000"]) == 0
    assert "no_lr.csv" in capsys.readouterr().out
    sched = o.family("constant", 3e-4, 24000)
    pred = fitted.predict(sched, rows[:, 0].astype(int))
    assert np.max(np.abs(pred / rows[:, 2] - 1)) < 0.05


def test_fit_refuses_to_overwrite_its_input(tmp_path, capsys):
    run = tmp_path / "run.csv"
    run.write_text((EXCERPT / "wsdcon_9.csv").read_text())
    assert main(["fit", str(run), "--model", "convex", "--save-model", str(run)]) == 2
    assert "is an input file" in capsys.readouterr().err
    assert run.read_text() == (EXCERPT / "wsdcon_9.csv").read_text()


def test_rank_orders_candidates_with_delta_method_uncertainty(fitted_convex, tmp_path, capsys):
    model = load_model(fitted_convex)
    _, cov = model.parameters()
    assert cov is not None and cov.shape == (3, 3)
    peak, T = 3e-4, 12000
    files = {}
    for name in ("constant", "linear", "cosine"):
        path = tmp_path / f"{name}.json"
        sched = o.family(name, peak, T).replace(units="real", lr_scale=model.lr_scale)
        o.Solution(
            model, sched, 1.0, np.zeros(2), np.zeros(2), peak, {}, o.RESULTS.successful, {}
        ).save(path)
        files[name] = path
    capsys.readouterr()
    assert main(["rank", str(fitted_convex), *map(str, files.values()), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ranked = [pathlib.Path(r["candidate"]).stem for r in out["ranking"]]
    predicted = {pathlib.Path(r["candidate"]).stem: r for r in out["ranking"]}
    # the order is the model's own prediction of each schedule
    for name, path in files.items():
        sched = o.load(path).schedule
        assert predicted[name]["predicted_final_loss"] == pytest.approx(
            float(model.predict(sched, [T])[0]), rel=1e-10
        )
    assert ranked[-1] == "constant"  # the bound prefers any decay to none
    assert 0.5 <= out["p_first_beats_second"] <= 1.0
    # the delta method against finite differences of the prediction in the parameters
    values, _ = model.parameters()
    sched = o.load(files[ranked[0]]).schedule
    lr = sched.to_units("real", lr_scale=model.lr_scale).per_step(1.0)[0]
    grad = []
    with o.float64():
        for i in range(3):
            h = 1e-4 * abs(values[i])  # smaller steps drown in the roundoff of T-step sums
            up, down = values.copy(), values.copy()
            up[i] += h
            down[i] -= h
            grad.append(
                float(
                    model.curve_at_parameters(up, lr, [T])[0]
                    - model.curve_at_parameters(down, lr, [T])[0]
                )
                / (2 * h)
            )
    grad = np.asarray(grad)
    assert out["ranking"][0]["stderr"] == pytest.approx(float(np.sqrt(grad @ cov @ grad)), rel=1e-4)
    # the same schedule twice is a tie, not a certainty
    best = str(files[ranked[0]])
    assert main(["rank", str(fitted_convex), best, best, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["p_first_beats_second"] == 0.5


def test_predict_and_rank_read_named_schedules(fitted_convex, capsys):
    model = load_model(fitted_convex)
    names = ["cosine:3e-4:12000", "constant:3e-4:12000"]
    capsys.readouterr()
    assert main(["rank", str(fitted_convex), *names, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for r in out["ranking"]:
        family, peak, steps = r["candidate"].split(":")
        sched = o.family(family, float(peak), int(steps))
        expected = float(model.predict(sched, [int(steps)])[0])
        assert r["predicted_final_loss"] == pytest.approx(expected, rel=1e-10)
    assert [r["candidate"] for r in out["ranking"]] == names  # the bound prefers the decay
    assert main(["predict", str(fitted_convex), names[0], "--json"]) == 0
    [pred] = json.loads(capsys.readouterr().out)
    assert pred["final_step"] == 12000 and pred["observed_final_loss"] is None
    assert main(["rank", str(fitted_convex), "cosin:3e-4:12000", names[0]]) == 2
    assert "not a file, nor FAMILY:PEAK:STEPS" in capsys.readouterr().err


def test_a_wandb_export_without_rates_takes_them_from_a_named_schedule(tmp_path, capsys):
    steps = list(range(0, 41, 4))
    history = {"val": {"iter": steps, "val_loss": [3.0 + 6.0 / (1 + s) ** 0.5 for s in steps]}}
    path = _wandb(tmp_path, history=history)
    with pytest.raises(RunFileError, match="no history.train"):
        read_run(path)
    history["train"] = {"iter": [10, 20], "train_loss": [5.0, 4.0]}
    path = _wandb(tmp_path, history=history)
    with pytest.raises(RunFileError, match=r"train_lr is missing or empty \(or give the rates"):
        read_run(path)
    sched = o.family("cosine", 1e-3, 40)
    [run] = read_run(path, schedule=sched)
    assert run.steps.tolist() == steps and run.schedule.horizon == 40
    np.testing.assert_array_equal(run.schedule.lr, sched.lr_at(np.arange(40)))
    # an export that logs its rates keeps them
    (tmp_path / "logged").mkdir()
    [logged] = read_run(_wandb(tmp_path / "logged"), schedule=sched)
    assert float(logged.schedule.lr_at(39)) == pytest.approx(5e-4)
    # the command line: --schedule, as for a CSV without an lr column
    model = tmp_path / "m.json"
    argv = ["fit", str(path), "--model", "convex", "--save-model", str(model), "-q"]
    assert main(argv) == 2 and "--schedule" in capsys.readouterr().err
    assert main([*argv, "--schedule", "cosine:1e-3:40"]) == 0
    assert load_model(model).pilot_peaks == (1e-3, 1e-3)


def test_loss_spikes_flags_isolated_excursions_and_nothing_else():
    from optsched.loss_models.fitting import loss_spikes

    rng = np.random.default_rng(0)
    t = np.arange(1, 201, dtype=float)
    clean = 3.0 + 2.0 * t**-0.5 - 0.3 * (t > 170) * (t - 170) / 30  # a fast cooldown at the end
    y = np.log(clean) + 5e-4 * rng.standard_normal(t.size)
    assert not loss_spikes(y).any()
    spiked = y.copy()
    spiked[[50, 120, 121]] += np.log(1.3)  # one point, then two in a row
    spiked[-1] += np.log(1.1)  # the last point, upwards
    assert list(np.flatnonzero(loss_spikes(spiked))) == [50, 120, 121, 199]
    dropped = y.copy()
    dropped[-1] -= np.log(1.1)  # a last point below its neighbours may be a cooldown: kept
    assert not loss_spikes(dropped).any()
    bump = y.copy()
    bump[80:88] += np.log(1.3)  # eight points: structure, not a spike
    assert not loss_spikes(bump).any()
    noisy = np.log(clean) + 0.03 * rng.standard_normal(t.size)  # training losses
    assert not loss_spikes(noisy).any()
    noisy[60] += np.log(2.0)
    assert list(np.flatnonzero(loss_spikes(noisy))) == [60]


def test_a_spike_in_a_pilot_run_is_left_out_of_the_fit_and_said(fitted_convex, tmp_path, capsys):
    lines = (EXCERPT / "cosine_24000.csv").read_text().splitlines()
    step, lr, loss = lines[20].split(",")
    lines[20] = f"{step},{lr},{2 * float(loss)}"
    spiked = tmp_path / "cosine_24000.csv"
    spiked.write_text("\n".join(lines) + "\n")
    runs = [str(spiked)] + [str(EXCERPT / f"{n}.csv") for n in ("constant_24000", "wsdcon_9")]
    capsys.readouterr()
    out = tmp_path / "m.json"
    assert main(["fit", *runs, "--model", "convex", "--save-model", str(out), "--quiet"]) == 0
    assert f"step {step}" in capsys.readouterr().err
    clean, fitted = load_model(fitted_convex), load_model(out)
    # one point fewer moves the fit by a small fraction of its standard errors (left in, the
    # doubled loss moves them by several)
    for name in ("u", "v"):
        gap = abs(float(getattr(fitted, name)) - float(getattr(clean, name)))
        assert gap < 0.2 * clean.stderr[name], name
