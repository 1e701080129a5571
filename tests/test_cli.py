"""The command line: the README's main job, JSON output, and one-line errors for bad input."""

import json

import pytest

from optsched.cli import main


def test_curve_on_the_builtin_example(capsys, tmp_path):
    out_png = tmp_path / "curve.png"
    assert main(["curve", "--horizon", "200", "--plot", str(out_png)]) == 0
    text = capsys.readouterr().out
    assert "easy phase" in text and "final excess loss" in text
    assert out_png.stat().st_size > 1000


def test_curve_json(capsys):
    assert main(["curve", "--horizon", "100", "--schedule", "wsd", "--lr", "0.3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["horizon"] == 100 and 0 < data["final_loss"] < data["loss"][0]
    assert data["problem"]["features"] == 500


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["curve", "--a", "0.9"], "a must be > 1"),
        (["curve", "--b", "1"], "b must be > 1"),
        (["curve", "--sigma", "-1"], "sigma"),
        (["curve", "--horizon", "0"], "horizon"),
        (["curve", "--features", "abc"], "features"),
        (["curve", "--lr", "5"], "diverges"),
    ],
)
def test_bad_input_gives_one_clear_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_solve_then_evaluate(tmp_path, capsys):
    out = tmp_path / "s.json"
    argv = [
        "solve",
        "--a",
        "1.3",
        "--b",
        "2.75",
        "--sigma",
        "0.7",
        "--features",
        "200",
        "--horizon",
        "300",
        "--lr-max",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "hard phase" in text and "beats constant" in text
    assert main(["evaluate", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    stored = json.loads(out.read_text())
    assert data["horizon"] == 300
    assert abs(data["final_loss"] / stored["predicted_final_loss"] - 1) < 1e-3
    assert data["final_loss"] < min(b["final_loss"] for b in stored["baselines"].values())


def test_phase_json(capsys):
    assert main(["phase", "--a", "2.5", "--b", "1.2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["phase"] == "easy" and abs(data["xi"] - (1 - 1.2 / 2.5)) < 1e-12


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["phase", "--a", "1", "--b", "2"], "a must be"),
        (["solve", "--horizon", "0", "--out", "x.json"], "horizon"),
        (["solve", "--horizon", "10", "--batch-schedule", "--out", "x.json"], "go together"),
        (
            [
                "solve",
                "--horizon",
                "10",
                "--batch-schedule",
                "--sample-budget",
                "5",
                "--out",
                "x.json",
            ],
            "outside the batch range",
        ),
        (["evaluate", "does-not-exist.json"], "cannot read"),
    ],
)
def test_more_bad_input(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_solve_batch_schedule_under_a_budget(tmp_path, capsys):
    out = tmp_path / "b.json"
    argv = [
        "solve",
        "--features",
        "60",
        "--horizon",
        "200",
        "--lr-max",
        "1",
        "--batch-schedule",
        "--sample-budget",
        "800",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert "with batch sizes (budget 800)" in capsys.readouterr().out
    stored = json.loads(out.read_text())
    assert len(stored["batch"]) == len(stored["steps"])
    assert main(["evaluate", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert abs(data["final_loss"] / stored["predicted_final_loss"] - 1) < 1e-6
