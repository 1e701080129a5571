"""Bad and extreme inputs across the CLI: every case exits with a clear one-line error (status
2, no traceback) or a correct result, and no file in the working folder changes.

Each case is ``(id, argv, expected status, a phrase the message must contain)``; ``{dir}``,
``{good}`` (a valid schedule file), ``{run}`` (a valid run file) and ``{model}`` (a valid model
file) are filled in. Files a case needs are written by the ``files`` table below.
"""

import hashlib
import json
import os
import pathlib

import numpy as np
import pytest

import optsched as o
from optsched.cli import main
from optsched.io import save

GOOD_RUN = "step,lr,loss\n" + "".join(
    f"{s},{1e-3 * (1 - s / 400):.6g},{3 + 2 * (1 + s) ** -0.5:.6g}\n" for s in range(0, 400, 20)
)

FILES = {
    "empty.csv": "",
    "header_only.csv": "step,lr,loss\n",
    "wrong_columns.csv": "iteration,rate,value\n1,0.1,3.0\n2,0.1,2.9\n",
    "duplicate_steps.csv": "step,lr,loss\n1,0.1,3.0\n1,0.1,2.9\n2,0.1,2.8\n",
    "nan_loss.csv": "step,lr,loss\n1,0.1,3.0\n2,0.1,nan\n3,0.1,2.8\n",
    "inf_lr.csv": "step,lr,loss\n1,0.1,3.0\n2,inf,2.9\n3,0.1,2.8\n",
    "negative_loss.csv": "step,lr,loss\n1,0.1,3.0\n2,0.1,-2.9\n3,0.1,2.8\n",
    "zero_loss.csv": "step,lr,loss\n1,0.1,3.0\n2,0.1,0\n3,0.1,2.8\n",
    "negative_lr.csv": "step,lr,loss\n1,0.1,3.0\n2,-0.1,2.9\n3,0.1,2.8\n",
    "negative_step.csv": "step,lr,loss\n-1,0.1,3.0\n2,0.1,2.9\n3,0.1,2.8\n",
    "decreasing_steps.csv": "step,lr,loss\n5,0.1,3.0\n2,0.1,2.9\n9,0.1,2.8\n",
    "text_value.csv": "step,lr,loss\n1,0.1,3.0\n2,0.1,abc\n",
    "two_points.csv": "step,lr,loss\n10,0.1,3.0\n20,0.1,2.9\n",
    "huge_loss.csv": "step,lr,loss\n1,0.1,3.0\n2,0.1,1e308\n3,0.1,2.8\n4,0.1,2.7\n",
    "not_json.json": "{this is not json",
    "no_history.json": json.dumps({"config": {}, "summary": {}}),
    "list.json": "[1, 2, 3]",
    "future.json": json.dumps({"format": "optsched.schedule/99", "horizon": 10}),
    "nan_lr.json": None,  # written from the good file below
    "negative_lr.json": None,
    "unsorted_steps.json": None,
    "huge_horizon.json": None,
    "zero_horizon.json": None,
    "model_nan.json": json.dumps(
        {
            "format": "optsched.model/1",
            "kind": "MultiPowerLaw",
            "params": [float("nan")] * 7,
            "lr_unit": 1e-3,
        }
    ),
    "model_kind.json": json.dumps({"format": "optsched.model/1", "kind": "Oracle"}),
    "model_wrong_size.json": json.dumps(
        {"format": "optsched.model/1", "kind": "MultiPowerLaw", "params": [1, 2], "lr_unit": 1}
    ),
    "model_peaks.json": json.dumps(
        {
            "format": "optsched.model/1",
            "kind": "ConvexBound",
            "u": 1.0,
            "v": 0.1,
            "loss_floor": 2.0,
            "lr_unit": 1e-3,
            "pilot_peaks": [2e-3, 1e-3],
        }
    ),
    "run.csv": GOOD_RUN,
    "schedule_negative.csv": "step,lr\n0,0.1\n1,-0.1\n",
    "schedule_text.csv": "step,lr\n0,abc\n",
    "schedule_unsorted.csv": "step,lr\n0,0.1\n5,0.1\n3,0.1\n",
    "schedule_ragged.csv": "step,lr\n0,0.1\n1,0.1,7\n",
    "increasing.csv": "step,lr,loss\n"
    + "".join(f"{s},0.1,{2 + s / 100}\n" for s in range(10, 400, 10)),
}

SOLVE = ["solve", "--out", "{dir}/out.json", "--quiet"]

CASES = [
    # solve: horizon
    ("horizon zero", [*SOLVE, "--horizon", "0"], 2, "horizon"),
    ("horizon negative", [*SOLVE, "--horizon", "-5"], 2, "horizon"),
    ("horizon fractional", [*SOLVE, "--horizon", "100.7"], 2, "horizon"),
    ("horizon boolean", [*SOLVE, "--horizon", "true"], 2, "horizon"),
    ("horizon nan", [*SOLVE, "--horizon", "nan"], 2, "horizon"),
    ("horizon 3e9", [*SOLVE, "--horizon", "3000000000"], 2, "GiB"),
    ("horizon 1e12", [*SOLVE, "--horizon", "1e12"], 2, "horizon"),
    ("horizon missing", ["solve", "--out", "{dir}/out.json"], 2, "--horizon"),
    # solve: caps and problem
    ("lr-max negative", [*SOLVE, "--horizon", "50", "--lr-max", "-1"], 2, "lr"),
    ("lr-max zero", [*SOLVE, "--horizon", "50", "--lr-max", "0"], 2, "lr"),
    ("lr-max nan", [*SOLVE, "--horizon", "50", "--lr-max", "nan"], 2, "lr"),
    ("lr-max inf", [*SOLVE, "--horizon", "50", "--lr-max", "inf"], 2, "lr"),
    ("lr-max text", [*SOLVE, "--horizon", "50", "--lr-max", "fast"], 2, "lr-max"),
    ("a equal 1", [*SOLVE, "--horizon", "50", "--a", "1"], 2, "a"),
    ("a nan", [*SOLVE, "--horizon", "50", "--a", "nan"], 2, "a"),
    ("b below 1", [*SOLVE, "--horizon", "50", "--b", "0.5"], 2, "b"),
    ("b inf", [*SOLVE, "--horizon", "50", "--b", "inf"], 2, "b"),
    ("sigma negative", [*SOLVE, "--horizon", "50", "--sigma", "-1"], 2, "sigma"),
    ("batch zero", [*SOLVE, "--horizon", "50", "--batch", "0"], 2, "batch"),
    ("features zero", [*SOLVE, "--horizon", "50", "--features", "0"], 2, "features"),
    ("features text", [*SOLVE, "--horizon", "50", "--features", "many"], 2, "features"),
    (
        "teacher narrower than student",
        [*SOLVE, "--horizon", "50", "--features", "100", "--teacher-modes", "10"],
        2,
        "teacher",
    ),
    ("budget missing", [*SOLVE, "--horizon", "50", "--batch-schedule"], 2, "sample-budget"),
    (
        "budget negative",
        [*SOLVE, "--horizon", "50", "--batch-schedule", "--sample-budget", "-1"],
        2,
        "budget",
    ),
    # solve: outputs
    (
        "out in a missing folder",
        ["solve", "--horizon", "50", "--out", "{dir}/missing/out.json"],
        2,
        "not a writable folder",
    ),
    ("out is a folder", ["solve", "--horizon", "50", "--out", "{dir}"], 2, "folder"),
    # evaluate / export: schedule files
    ("evaluate missing file", ["evaluate", "{dir}/absent.json"], 2, "absent.json"),
    ("evaluate empty file", ["evaluate", "{dir}/empty.csv"], 2, "empty.csv"),
    ("evaluate not JSON", ["evaluate", "{dir}/not_json.json"], 2, "not_json.json"),
    ("evaluate a list", ["evaluate", "{dir}/list.json"], 2, "list.json"),
    ("evaluate future version", ["evaluate", "{dir}/future.json"], 2, "99"),
    ("evaluate NaN rate", ["evaluate", "{dir}/nan_lr.json"], 2, "lr"),
    ("evaluate negative rate", ["evaluate", "{dir}/negative_lr.json"], 2, "lr"),
    ("evaluate unsorted steps", ["evaluate", "{dir}/unsorted_steps.json"], 2, "steps"),
    ("evaluate huge horizon", ["evaluate", "{dir}/huge_horizon.json"], 2, "horizon"),
    ("evaluate zero horizon", ["evaluate", "{dir}/zero_horizon.json"], 2, "horizon"),
    ("evaluate a folder", ["evaluate", "{dir}"], 2, ""),
    (
        "export over its input",
        ["export", "{good}", "--format", "csv", "--out", "{good}"],
        2,
        "input",
    ),
    ("export unknown format", ["export", "{good}", "--format", "onnx"], 2, "format"),
    (
        "export into a missing folder",
        ["export", "{good}", "--format", "csv", "--out", "{dir}/no/x.csv"],
        2,
        "writable",
    ),
    # fit: run files
    ("fit missing run", ["fit", "{dir}/absent.csv", "--save-model", "{dir}/m.json"], 2, "absent"),
    ("fit empty run", ["fit", "{dir}/empty.csv", "--save-model", "{dir}/m.json"], 2, "empty"),
    ("fit header only", ["fit", "{dir}/header_only.csv", "--save-model", "{dir}/m.json"], 2, ""),
    (
        "fit wrong columns",
        ["fit", "{dir}/wrong_columns.csv", "--save-model", "{dir}/m.json"],
        2,
        "",
    ),
    (
        "fit duplicate steps",
        ["fit", "{dir}/duplicate_steps.csv", "--save-model", "{dir}/m.json"],
        2,
        "step",
    ),
    ("fit NaN loss", ["fit", "{dir}/nan_loss.csv", "--save-model", "{dir}/m.json"], 2, "nan"),
    ("fit inf rate", ["fit", "{dir}/inf_lr.csv", "--save-model", "{dir}/m.json"], 2, "inf"),
    (
        "fit negative loss",
        ["fit", "{dir}/negative_loss.csv", "--save-model", "{dir}/m.json"],
        2,
        "loss",
    ),
    ("fit zero loss", ["fit", "{dir}/zero_loss.csv", "--save-model", "{dir}/m.json"], 2, "loss"),
    (
        "fit negative rate",
        ["fit", "{dir}/negative_lr.csv", "--save-model", "{dir}/m.json"],
        2,
        "lr",
    ),
    (
        "fit negative step",
        ["fit", "{dir}/negative_step.csv", "--save-model", "{dir}/m.json"],
        2,
        "step",
    ),
    (
        "fit decreasing steps",
        ["fit", "{dir}/decreasing_steps.csv", "--save-model", "{dir}/m.json"],
        2,
        "step",
    ),
    ("fit text value", ["fit", "{dir}/text_value.csv", "--save-model", "{dir}/m.json"], 2, "abc"),
    (
        "fit two points",
        ["fit", "{dir}/two_points.csv", "--model", "mpl", "--save-model", "{dir}/m.json"],
        2,
        "at least 8",
    ),
    (
        "fit huge loss",
        ["fit", "{dir}/huge_loss.csv", "--model", "mpl", "--save-model", "{dir}/m.json"],
        2,
        "",
    ),
    (
        "fit W&B without history",
        ["fit", "{dir}/no_history.json", "--save-model", "{dir}/m.json"],
        2,
        "history",
    ),
    (
        "fit bad named schedule",
        ["fit", "{run}", "--schedule", "staircase:1:2", "--save-model", "{dir}/m.json"],
        2,
        "FAMILY:PEAK:STEPS",
    ),
    (
        "fit schedule peak",
        ["fit", "{run}", "--schedule", "cosine:-1:400", "--save-model", "{dir}/m.json"],
        2,
        "PEAK",
    ),
    (
        "fit unknown model",
        ["fit", "{run}", "--model", "oracle", "--save-model", "{dir}/m.json"],
        2,
        "model",
    ),
    ("fit model over its input", ["fit", "{run}", "--save-model", "{run}"], 2, "input"),
    ("fit nothing to write", ["fit", "{run}"], 2, ""),
    ("fit horizon without out", ["fit", "{run}", "--horizon", "500"], 2, "out"),
    (
        "fit negative floor",
        ["fit", "{run}", "--horizon", "500", "--out", "{dir}/o.json", "--lr-min", "-1e-4"],
        2,
        "--lr-min",
    ),
    # predict / rank: model files
    ("predict missing model", ["predict", "{dir}/absent.json", "{run}"], 2, "absent"),
    ("max-peak missing model", ["max-peak", "{dir}/absent.json"], 2, "absent"),
    ("max-peak of a convex bound", ["max-peak", "{model}"], 2, "no stability edge"),
    ("predict schedule as model", ["predict", "{good}", "{run}"], 2, "model file"),
    ("predict NaN parameters", ["predict", "{dir}/model_nan.json", "{run}"], 2, "params"),
    ("predict unknown kind", ["predict", "{dir}/model_kind.json", "{run}"], 2, "Oracle"),
    ("predict wrong size", ["predict", "{dir}/model_wrong_size.json", "{run}"], 2, "params"),
    ("predict peaks reversed", ["predict", "{dir}/model_peaks.json", "{run}"], 2, "pilot_peaks"),
    ("predict bad run", ["predict", "{model}", "{dir}/nan_loss.csv"], 2, "nan"),
    # a schedule CSV (what optsched export writes: step, lr, no loss)
    (
        "predict negative schedule",
        ["predict", "{model}", "{dir}/schedule_negative.csv"],
        2,
        "learning rates must be >= 0",
    ),
    ("predict text schedule", ["predict", "{model}", "{dir}/schedule_text.csv"], 2, "abc"),
    ("rank unsorted schedule", ["rank", "{model}", "{dir}/schedule_unsorted.csv"], 2, "increase"),
    ("rank ragged schedule", ["rank", "{model}", "{dir}/schedule_ragged.csv"], 2, "more fields"),
    ("rank missing candidate", ["rank", "{model}", "{dir}/absent.json"], 2, "absent"),
    # phase / curve
    ("phase a below 1", ["phase", "--a", "0.5", "--b", "2"], 2, "a"),
    ("phase b nan", ["phase", "--a", "2", "--b", "nan"], 2, "b"),
    ("curve unknown family", ["curve", "--schedule", "staircase"], 2, "schedule"),
    ("curve plot format", ["curve", "--horizon", "20", "--plot", "{dir}/fig.docx"], 2, ".docx"),
    ("curve plot folder", ["curve", "--horizon", "20", "--plot", "{dir}/no/fig"], 2, "writable"),
    ("curve lr negative", ["curve", "--lr", "-0.1", "--horizon", "20"], 2, "learning rate"),
    (
        "fit increasing losses",
        ["fit", "{dir}/increasing.csv", "--save-model", "{dir}/m.json"],
        2,
        "increas",
    ),
]


def _fill(argv, where):
    return [a.format(**where) for a in argv]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    for name, text in FILES.items():
        if text is not None:
            (root / name).write_text(text)
    with o.float64():
        sol = o.solve(o.PowerLawProblem(1.5, 1.3), 40, 0.5, optimiser=o.LBFGS(knots=8, max_knots=8))
    good = root / "good.json"
    save(sol, good)
    data = json.loads(good.read_text())
    variants = {
        "nan_lr.json": lambda d: d["lr"].__setitem__(1, "NaN"),
        "negative_lr.json": lambda d: d["lr"].__setitem__(1, -0.1),
        "unsorted_steps.json": lambda d: d["steps"].reverse(),
        "huge_horizon.json": lambda d: d.__setitem__("horizon", 10**15),
        "zero_horizon.json": lambda d: d.__setitem__("horizon", 0),
    }
    for name, change in variants.items():
        d = json.loads(json.dumps(data))
        change(d)
        (root / name).write_text(json.dumps(d).replace('"NaN"', "NaN"))
    assert (
        main(
            [
                "fit",
                str(root / "run.csv"),
                "--model",
                "convex",
                "--save-model",
                str(root / "model.json"),
                "--quiet",
            ]
        )
        == 0
    )
    return root


def _snapshot(root: pathlib.Path) -> dict:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("argv", "status", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gives_one_clear_line_and_changes_nothing(folder, capsys, argv, status, phrase):
    where = {
        "dir": str(folder),
        "good": str(folder / "good.json"),
        "run": str(folder / "run.csv"),
        "model": str(folder / "model.json"),
    }
    before = _snapshot(folder)
    capsys.readouterr()
    try:
        code = main(_fill(argv, where))
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == status, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("optsched")
    assert phrase.lower() in err.lower(), err
    assert _snapshot(folder) == before


def test_the_table_is_large_enough():
    assert len(CASES) >= 60


def test_read_only_folder_is_refused_before_the_work(folder, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = folder / "locked"
    locked.mkdir(exist_ok=True)
    locked.chmod(0o500)
    try:
        code = main(["solve", "--horizon", "50", "--out", str(locked / "x.json"), "--quiet"])
    finally:
        locked.chmod(0o700)
    assert code == 2 and "not a writable folder" in capsys.readouterr().err
    assert not any(locked.iterdir())


def test_numbers_in_every_json_output_are_finite(folder, capsys):
    capsys.readouterr()
    assert main(["predict", str(folder / "model.json"), str(folder / "run.csv"), "--json"]) == 0
    out = capsys.readouterr().out
    json.loads(out, parse_constant=lambda c: pytest.fail(f"non-finite {c} in JSON"))
    assert np.isfinite(json.loads(out)[0]["predicted_final_loss"])
