"""The training examples run end to end at a tiny size, so they never rot (full runs: README)."""

import importlib.util
import pathlib
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses (equinox modules) look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name, argv, table_rows",
    [
        ("rf_regression", ["--runs", "16", "--horizon", "60"], 3),
        ("char_lm", ["--steps", "20", "--seeds", "2", "--peaks", "0.004", "0.016"], 4 + 4),
    ],
)
def test_example_runs_and_writes_its_table(name, argv, table_rows, tmp_path):
    assert _load(name).main([*argv, "--out", str(tmp_path)]) == 0
    stem = name if name == "rf_regression" else "char_lm_small"
    text = (tmp_path / f"{stem}.txt").read_text()
    assert (
        sum(
            line.startswith(("| optsched", "| cosine", "| wsd", "| linear"))
            for line in text.splitlines()
        )
        == table_rows
    )
    assert (tmp_path / f"{stem}.png").stat().st_size > 10_000
