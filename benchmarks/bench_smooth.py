"""Smooth schedules at long horizons: what a smooth solve costs beside the staircase, and whether
the exported per-step schedule gives the loss ``solve`` reports.

The easy problem of the paper reproduction (a = 2.5, b = 1.2, sigma = 0.1, m = 4, N = inf,
eta <= 2). Per horizon: the staircase solve (controls constant between knots, closed form per
block) and the smooth one (``interpolation="linear"``: controls linear between knots, every
refinement level step by step); their final losses; the final loss of the
smooth solution's exported per-step rates (``to_optax``) recomputed by the per-step recursion
(``loss_curve(..., method="scan")``) on its own mode grid; and the largest step-to-step jump of
each schedule in the middle of training (t/T in [1/8, 7/8]), relative to the peak rate.

    python benchmarks/bench_smooth.py [--horizons 1000 10000 100000 1000000]

Writes results/bench_smooth.txt.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax.numpy as jnp
import numpy as np

import optsched as o
from optsched.reproduce._common import EASY, EASY_LR_MAX


def _largest_jump(lr) -> float:
    lr = np.asarray(lr, dtype=float)
    T = lr.size
    middle = np.abs(np.diff(lr))[T // 8 : T - T // 8]
    return float(middle.max() / lr.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--horizons", nargs="+", type=int, default=[1000, 10_000, 100_000])
    args = parser.parse_args()
    header = (
        f"{'T':>8} {'stairs s':>9} {'smooth s':>9} {'stairs loss':>12} {'smooth loss':>12} "
        f"{'exported/reported-1':>20} {'jump stairs':>11} {'jump smooth':>11}"
    )
    lines = [header]
    print(header, flush=True)
    for T in args.horizons:
        t0 = time.perf_counter()
        stairs = o.solve(EASY, T, EASY_LR_MAX)
        t1 = time.perf_counter()
        smooth = o.solve(EASY, T, EASY_LR_MAX, interpolation="linear")
        t2 = time.perf_counter()
        with o.float64():
            lr = jnp.asarray(o.to_optax(smooth.schedule)(jnp.arange(T)), dtype=float)
            grid = o.mode_grid(EASY.features, b=float(EASY.b), max_time=float(jnp.sum(lr)))
            curve = o.loss_curve(EASY, o.Schedule(jnp.arange(T), lr), method="scan", grid=grid)
            recomputed = float(curve.loss[-1])
        row = (
            f"{T:>8} {t1 - t0:>9.1f} {t2 - t1:>9.1f} {stairs.final_loss:>12.6g} "
            f"{smooth.final_loss:>12.6g} {recomputed / smooth.final_loss - 1:>20.2e} "
            f"{_largest_jump(stairs.schedule.lr_at(np.arange(T))):>11.3f} "
            f"{_largest_jump(lr):>11.4f}"
        )
        lines.append(row)
        print(row, flush=True)
    out = pathlib.Path(__file__).parent / "results" / "bench_smooth.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
