"""``optsched fit runs.csv --horizon T --out FILE.json``: from pilot runs to a schedule file."""

import csv
import json

import numpy as np
import pytest

import optsched as o
from optsched.cli import main
from optsched.loss_models.fitted import FittedProblem

T = 300


def write_runs(path, truth, rng):
    with open(path, "w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["run", "step", "lr", "loss"])
        for name, s in (
            ("constant", o.Schedule.constant(1e-3, T)),
            ("cooldown", o.family("wsd", 1e-3, T, cooldown=0.3)),
        ):
            lr = np.asarray(s.lr_at(np.arange(T)))
            loss = truth.predict(s) * np.exp(0.003 * rng.standard_normal(T + 1))
            for t in range(T + 1):
                w.writerow(
                    [
                        name,
                        t,
                        repr(float(lr[t])) if t < T else "",
                        repr(float(loss[t])) if t % 5 == 0 else "",
                    ]
                )


def test_fit_writes_a_schedule_in_real_units_that_evaluate_reads(tmp_path, capsys):
    truth = FittedProblem(
        o.PowerLawProblem(2.0, 1.5, sigma=0.3), 400.0, 1.5, 0.8, {}, np.zeros((6, 6)), 0.0
    )
    runs = tmp_path / "runs.csv"
    write_runs(runs, truth, np.random.default_rng(1))
    out = tmp_path / "fit.json"
    assert main(["fit", str(runs), "--horizon", "600", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "--warmup" not in said  # the pilots did not warm up
    data = json.loads(out.read_text())
    # how surely the optimum beats the best tuned baseline, under the fitted model's covariance
    versus = data["diagnostics"]["fit"]["versus_best_baseline"]
    name, best = min(data["baselines"].items(), key=lambda kv: kv[1]["final_loss"])
    assert versus["baseline"] == name and f"best tuned baseline ({name}) by" in said
    gap = best["final_loss"] - data["predicted_final_loss"]
    assert versus["gap"] == pytest.approx(gap, abs=1e-5 * data["predicted_final_loss"])
    assert versus["gap"] > 0 and versus["gap_stderr"] > 0 and 0.5 < versus["p_better"] <= 1
    assert data["horizon"] == 600 and max(data["lr"]) <= 1e-3 * (1 + 1e-12)
    assert data["lr_scale"] == pytest.approx(400.0, rel=0.05)
    assert data["format"] == "optsched.schedule/2" and data["units"] == "real"
    assert data["diagnostics"]["fit"]["values"]["b"] == pytest.approx(1.5, rel=0.05)
    # the file's schedule, in real units, is what the truth would predict for it
    sched = o.load(out).schedule
    assert sched.units == "real" and sched.lr_scale == data["lr_scale"]
    assert data["predicted_final_loss"] == pytest.approx(truth.predict(sched)[-1], rel=0.005)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    # evaluate builds its own mode quadrature: agreement to its accuracy
    assert ev["final_loss"] == pytest.approx(data["predicted_final_loss"], rel=1e-4)


@pytest.mark.parametrize(
    "content, message",
    [
        ("run,step,lr\na,0,0.1\n", "missing column(s) loss"),
        ("run,step,lr,loss\na,0,x,1\n", "line 2: lr must be a number"),
        ("run,step,lr,loss\na,0,0.1,1\na,0,0.1,0.5\n", "steps must increase"),
    ],
)
def test_bad_run_files_fail_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "runs.csv"
    path.write_text(content)
    assert main(["fit", str(path), "--horizon", "10", "--out", str(tmp_path / "f.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_loss_predicted_with_the_pilots_warmup_is_that_of_the_exported_ramp(tmp_path, capsys):
    """What ``fit --horizon`` prints for the schedule behind the pilots' warm-up is the model's
    prediction of the CSV that ``optsched export --warmup`` writes, read back by
    ``optsched predict``; the ramp costs loss, and no warm-up (or one as long as the run)
    predicts nothing."""
    import jax.numpy as jnp

    from optsched.cli import _predicted_with_warmup
    from optsched.export import to_csv
    from optsched.loss_models.multipower import MultiPowerLaw
    from optsched.loss_models.store import save_model

    truth = MultiPowerLaw(jnp.array([2.0, 1.0, 0.5, 0.6, 2.0, 0.6, 0.5]), 1e-3, {})
    controls = o.LearningRate(lr_max=1e-3, decay_only=True)
    sol = o.solve(truth, T, controls, optimiser=o.LBFGS(max_knots=16))
    ramped = _predicted_with_warmup(truth, sol.schedule, 40)
    path = tmp_path / "ramp.csv"
    path.write_text(to_csv(sol, warmup=40))
    save_model(truth, tmp_path / "m.json")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m.json"), str(path), "--json"]) == 0
    [out] = json.loads(capsys.readouterr().out)
    assert out["final_step"] == T and out["observed_final_loss"] is None
    assert ramped == pytest.approx(out["predicted_final_loss"], rel=1e-12)
    assert ramped > sol.final_loss
    assert _predicted_with_warmup(truth, sol.schedule, 0) is None
    assert _predicted_with_warmup(truth, sol.schedule, T + 1) is None
