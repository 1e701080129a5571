"""The command line: the README's main job, JSON output, and one-line errors for bad input."""

import json
import os
import subprocess
import sys

import pytest

from optsched.cli import main


def test_curve_on_the_builtin_example(capsys, tmp_path):
    out_png = tmp_path / "curve.png"
    assert main(["curve", "--horizon", "200", "--plot", str(out_png)]) == 0
    text = capsys.readouterr().out
    assert "easy phase" in text and "final excess loss" in text
    assert out_png.stat().st_size > 1000
    # without an extension the figure is a PNG named with one; a PDF when asked
    assert main(["curve", "--horizon", "50", "--plot", str(tmp_path / "fig"), "--json"]) == 0
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["curve", "--horizon", "50", "--plot", str(tmp_path / "f.pdf"), "--json"]) == 0
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"


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


def test_version_and_guards_around_writes(tmp_path, capsys, monkeypatch):
    import optsched as o
    import optsched.cli as cli

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"optsched {o.__version__}"
    # an unwritable output folder is refused before the solve, in one line
    assert main(["solve", "--horizon", "10", "--out", str(tmp_path / "no" / "x.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    # export never writes over its input
    src = tmp_path / "s.json"
    assert main(["solve", "--horizon", "20", "--features", "20", "--quiet", "--out", str(src)]) == 0
    before = src.read_text()
    assert main(["export", str(src), "--format", "csv", "--out", str(src)]) == 2
    assert "is an input file" in capsys.readouterr().err and src.read_text() == before

    # Ctrl-C: status 130, one line, no file changed
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_export", interrupted)
    assert main(["export", str(src), "--format", "csv", "--out", str(tmp_path / "c.csv")]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and not (tmp_path / "c.csv").exists()
    assert src.read_text() == before


def test_smooth_solve_writes_a_linear_schedule(tmp_path, capsys):
    out = tmp_path / "s.json"
    argv = ["solve", "--features", "60", "--horizon", "200", "--lr-max", "2", "--smooth"]
    assert main([*argv, "--quiet", "--out", str(out)]) == 0
    stored = json.loads(out.read_text())
    assert stored["interpolation"] == "linear"
    assert main(["evaluate", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert abs(data["final_loss"] / stored["predicted_final_loss"] - 1) < 1e-4


def test_the_cli_keeps_compiled_programs_in_its_cache_folder(tmp_path):
    """A new process with OPTSCHED_CACHE_DIR fills that folder; a second run reads it."""
    cache = tmp_path / "cache"
    env = dict(os.environ, OPTSCHED_CACHE_DIR=str(cache))
    argv = [sys.executable, "-m", "optsched", "solve", "--features", "20", "--horizon", "50"]
    argv += ["--lr-max", "1", "--quiet", "--out", str(tmp_path / "s.json")]
    subprocess.run(argv, env=env, check=True, capture_output=True)
    entries = list(cache.iterdir())
    assert len(entries) > 5
    subprocess.run(argv, env=env, check=True, capture_output=True)
    assert len(list(cache.iterdir())) == len(entries)  # all hits, nothing new
    off = dict(os.environ, OPTSCHED_CACHE_DIR="")
    subprocess.run(argv, env=off, check=True, capture_output=True)
