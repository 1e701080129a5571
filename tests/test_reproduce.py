"""``optsched reproduce``: figures, results.json and checks; the experiments' own helpers."""

import json

import numpy as np
import pytest

from optsched.cli import main
from optsched.reproduce import Check, checks_table
from optsched.reproduce.compute_optimal import frontier


def test_reproduce_writes_figures_and_results(tmp_path, capsys):
    # one experiment through the command line; every experiment's own checks are asserted by
    # its notebook (tests/test_notebooks.py), which runs the same quick solves
    rc = main(["reproduce", "--out", str(tmp_path), "--quick", "--only", "hard_phase"])
    assert rc == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] is True
    assert set(results["experiments"]) == {"hard_phase"}
    assert (tmp_path / "hard_phase.png").stat().st_size > 10_000
    checks = results["experiments"]["hard_phase"]["checks"]
    assert checks and all(
        {"quantity", "theory", "measured", "tolerance", "where", "passed"} <= set(c) for c in checks
    )
    # and the reproduction holds: every check within its (quick) tolerance, recomputed here
    for c in checks:
        if c["relation"] == "above":
            holds = c["measured"] > c["theory"] + c["tolerance"]
        else:
            holds = abs(c["measured"] - c["theory"]) <= c["tolerance"]
        assert c["passed"] == holds and holds, c
    out = capsys.readouterr().out
    assert "| quantity | theory | measured |" in out and "checks within tolerance" in out


def test_refreshing_one_experiment_keeps_the_others_results(tmp_path, monkeypatch):
    """``--only`` replaces its own entries in an existing results.json of the same size and
    keeps the rest (in the experiments' order); a run of the other size starts afresh."""
    import optsched.reproduce as rep

    monkeypatch.setattr(
        rep, "run", lambda name, quick, progress: rep.Result(name, {"quick": quick}, [], {})
    )
    rep.reproduce(tmp_path, quick=True, only=["hard_phase", "easy_phase"])
    returned = rep.reproduce(tmp_path, quick=True, only=["phase_diagram", "hard_phase"])
    assert set(returned["experiments"]) == {"phase_diagram", "hard_phase"}
    kept = json.loads((tmp_path / "results.json").read_text())
    assert list(kept["experiments"]) == ["easy_phase", "hard_phase", "phase_diagram"]
    rep.reproduce(tmp_path, quick=False, only=["loss_scaling"])
    fresh = json.loads((tmp_path / "results.json").read_text())
    assert fresh["quick"] is False and list(fresh["experiments"]) == ["loss_scaling"]


def test_reproduce_rejects_unknown_experiment(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path), "--only", "nonsense"]) == 2
    assert "unknown experiment 'nonsense'" in capsys.readouterr().err


def test_check_relations_and_table():
    inside = Check("x", 1.0, 1.04, 0.05, "T = 1e3")
    outside = Check("x", 1.0, 1.06, 0.05, "T = 1e3")
    above = Check("gain", 0.0, 0.1, 0.0, "T = 1e3", relation="above")
    below = Check("gain", 0.0, -0.1, 0.0, "T = 1e3", relation="above")
    assert inside.passed and not outside.passed and above.passed and not below.passed
    table = checks_table([inside, outside, above])
    assert table.count("| yes |") == 2 and table.count("| NO |") == 1
    # a pipe in a cell is escaped, so the row keeps its six columns
    piped = checks_table([Check("|x| slope", 1.0, 1.0, 0.1, "T | N")])
    row = piped.splitlines()[-1]
    assert row.startswith("| \\|x\\| slope |") and row.replace("\\|", "").count("|") == 7


def test_frontier_recovers_a_known_compute_optimum():
    """A synthetic loss N^-p + T^-q has N*(C) ~ C^(q/(p+q)): the frontier must find it."""
    p, q, batch = 1.5, 0.6, 4.0
    widths = [2.0**i for i in range(3, 12)]
    horizons = [2.0**j for j in range(4, 16)]
    loss = np.array([[N**-p + T**-q for T in horizons] for N in widths])
    front = frontier(widths, horizons, loss, batch)
    C, n = np.array([f[0] for f in front]), np.array([f[1] for f in front])
    slope = np.polyfit(np.log(C), np.log(n), 1)[0]
    assert len(front) >= 5
    assert slope == pytest.approx(q / (p + q), abs=0.02)


def test_smooth_solutions_are_kept_apart_from_the_staircases():
    """The full easy-phase run solves smooth schedules: ``solutions(..., interpolation=
    "linear")`` returns them, remembered under their own key (a staircase of the same problem
    and horizon is another solve), within 1% of the staircase (0.4% above it here, at T = 200,
    where the staircase refines to more knots; 0.03% at T = 1000, benchmarks/bench_smooth.py)."""
    from optsched.reproduce._common import EASY, EASY_LR_MAX, solutions

    [smooth] = solutions(EASY, [200], EASY_LR_MAX, interpolation="linear")
    [stairs] = solutions(EASY, [200], EASY_LR_MAX)
    assert smooth.schedule.interpolation == "linear"
    assert stairs.schedule.interpolation == "previous"
    assert solutions(EASY, [200], EASY_LR_MAX, interpolation="linear")[0] is smooth
    assert abs(smooth.final_loss / stairs.final_loss - 1) < 0.01
