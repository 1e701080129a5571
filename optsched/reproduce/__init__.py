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
    results dictionary (``{"quick", "experiments": {name: {numbers, checks, time_s}}}``)."""
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
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    return results
