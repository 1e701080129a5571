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
