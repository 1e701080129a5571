"""Schedule files: exact round trip, and one clear error for every kind of broken file."""

import json

import numpy as np
import pytest

import optsched as o
from optsched.io import FORMAT, ScheduleFileError, load
from optsched.solver.solve import solve


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    p = o.PowerLawProblem(2.5, 1.2, sigma=0.1, batch=4, features=60)
    sol = solve(p, 200, 1.0, optimiser=o.LBFGS(max_knots=32))
    path = tmp_path_factory.mktemp("files") / "s.json"
    sol.save(path)
    return sol, path


def test_round_trip_is_exact(solved):
    sol, path = solved
    f = load(path)
    assert json.loads(path.read_text())["format"] == FORMAT
    assert f.schedule.horizon == 200 and f.schedule.interpolation == "previous"
    assert np.array_equal(np.asarray(f.schedule.steps), np.asarray(sol.schedule.steps))
    assert np.array_equal(np.asarray(f.schedule.lr), np.asarray(sol.schedule.lr))
    assert f.problem.to_dict() == sol.problem.to_dict()
    assert f.predicted_final_loss == sol.final_loss
    assert set(f.baselines) == set(sol.baselines)
    # the expansion of the file is the expansion of the solution, step by step
    t = np.arange(200)
    assert np.array_equal(np.asarray(f.schedule.lr_at(t)), np.asarray(sol.schedule.lr_at(t)))


def _broken(tmp_path, text):
    p = tmp_path / "bad.json"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d.update(format="optsched.schedule/3"), "unsupported format"),
        (lambda d: d.pop("lr"), "missing entry 'lr'"),
        (lambda d: d["steps"].__setitem__(slice(1, 3), d["steps"][2:0:-1]), "increasing"),
        (lambda d: d.update(lr=[0.1]), "one value per knot"),
        (lambda d: d["problem"].update(a=0.5), "a must be > 1"),
        (lambda d: d.update(interpolation="cubic"), "interpolation"),
    ],
)
def test_hand_broken_files_give_one_clear_error(solved, tmp_path, mutate, needle):
    _, path = solved
    data = json.loads(path.read_text())
    mutate(data)
    with pytest.raises(ScheduleFileError, match=needle):
        load(_broken(tmp_path, json.dumps(data)))


def test_truncated_and_missing_files(solved, tmp_path):
    _, path = solved
    with pytest.raises(ScheduleFileError, match="not valid JSON"):
        load(_broken(tmp_path, path.read_text()[:100]))
    with pytest.raises(ScheduleFileError, match="cannot read"):
        load(tmp_path / "nope.json")
