"""The README's tour runs as written (docs that run)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the tour writes schedule.json
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace = {}  # the blocks are one session, as a reader runs them
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "easy" in out and "diverges" in out


def test_readme_shows_the_ci_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && python -m pytest -q' in README.read_text()
    assert "python -m pytest -q" in ci and '-e ".[test' in ci


def test_the_warm_up_page_runs_and_a_warm_up_emerges(capsys):
    page = README.parent / "docs" / "warmup-and-divergence.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks
    namespace = {}
    for code in blocks:
        exec(compile(code, str(page), "exec"), namespace)
    rates = namespace["rates"]
    peak = max(range(len(rates)), key=rates.__getitem__)
    assert 10 < peak < 200 and rates[0] < 0.5 * rates[peak] and rates[-1] < 1e-3 * rates[peak]
    assert "the warm-up ends at the gap" in capsys.readouterr().out
