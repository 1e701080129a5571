"""Reproduce the easy/hard phase results: every figure and measured number, from one call.

Each experiment is a module with ``run(quick, progress) -> Result`` (numbers, checks against
theory with stated tolerances, matplotlib figures); the notebooks in ``notebooks/`` tell the
story around the same calls, and ``optsched reproduce --out DIR [--quick]`` writes every figure
as PNG and the numbers to ``DIR/results.json``.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import time
from collections.abc import Callable, Sequence

from ._common import Check, Result, checks_table

__all__ = ["EXPERIMENTS", "Check", "Result", "checks_table", "reproduce", "run"]

EXPERIMENTS = (
    "easy_phase",
    "hard_phase",
    "loss_scaling",
    "phase_diagram",
    "momentum_and_batch",
    "compute_optimal",
    "export_to_optax",
)


def run(name: str, quick: bool = False, progress: Callable[[str], None] | None = None) -> Result:
    """Run one experiment of :data:`EXPERIMENTS`."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    module = importlib.import_module(f".{name}", __name__)
    return module.run(quick=quick, progress=progress)


def reproduce(
    out,
    *,
    quick: bool = False,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run the experiments, write ``out/<figure>.png`` and ``out/results.json``; return the
    results dictionary (``{"quick", "experiments": {name: {numbers, checks, time_s}}}``) of the
    experiments run.

    With ``only``, an existing ``out/results.json`` of the same size (``quick``) keeps the other
    experiments' entries: the run replaces its own and adds nothing else, so one experiment can
    be refreshed in a folder that holds them all."""
    say = progress or (lambda msg: None)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(only) if only else list(EXPERIMENTS)
    results = {"quick": quick, "experiments": {}}
    for name in names:
        say(f"{name}: running")
        t0 = time.perf_counter()
        result = run(name, quick=quick, progress=lambda msg, n=name: say(f"{n}: {msg}"))
        entry = result.to_dict()
        entry["time_s"] = round(time.perf_counter() - t0, 1)
        entry["figures"] = []
        for stem, fig in result.figures.items():
            path = out / f"{stem}.png"
            fig.savefig(path, dpi=150)
            entry["figures"].append(path.name)
            import matplotlib.pyplot as plt

            plt.close(fig)
        results["experiments"][name] = entry
        passed = sum(c.passed for c in result.checks)
        say(
            f"{name}: {passed}/{len(result.checks)} checks within tolerance, "
            f"{entry['time_s']:.0f} s"
        )
    (out / "results.json").write_text(
        json.dumps(_kept_with(out / "results.json", results, only), indent=1, default=float) + "\n"
    )
    return results


def _kept_with(path: pathlib.Path, results: dict, only) -> dict:
    """``results`` merged into the file's earlier ones when ``only`` some experiments ran and the
    file holds a run of the same size (entries in :data:`EXPERIMENTS` order)."""
    if not only or not path.exists():
        return results
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return results
    if not isinstance(earlier, dict) or earlier.get("quick") != results["quick"]:
        return results
    merged = {**earlier.get("experiments", {}), **results["experiments"]}
    order = [n for n in EXPERIMENTS if n in merged] + [n for n in merged if n not in EXPERIMENTS]
    return {**earlier, "quick": results["quick"], "experiments": {n: merged[n] for n in order}}
