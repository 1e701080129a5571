"""Batched solves for phase diagrams: ``solve_many`` (both strategies) against one ``solve`` per
problem, on a grid of (a, b) at one horizon, side by side in one run. Times include compilation.

    python benchmarks/bench_many.py                  # 10 x 10 grid, T = 1000, N = inf
    python benchmarks/bench_many.py --grid 4 --horizon 300
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import numpy as np

import optsched as o


def grid_problems(n: int) -> list[o.PowerLawProblem]:
    """An ``n x n`` grid over the (a, b) plane, both phases, 0.1 < a - 1 and b > 1.05."""
    problems = []
    for b in np.linspace(1.1, 2.5, n):
        for ratio in np.linspace(0.6, 2.2, n):  # a = ratio * b: hard below 2b - 1 < a ...
            a = max(ratio * b, 1.1)
            problems.append(
                o.PowerLawProblem(a=float(a), b=float(b), sigma=0.1, batch=4, features=math.inf)
            )
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=1000)
    parser.add_argument("--skip-vmap", action="store_true")
    args = parser.parse_args()
    problems = grid_problems(args.grid)
    B = len(problems)
    print(
        f"jax {jax.__version__}, {jax.default_backend()}, float64; {B} problems "
        f"({args.grid} x {args.grid} over a, b), T = {args.horizon}, N = inf"
    )
    runs = {}
    t0 = time.perf_counter()
    runs["solve, one call each"] = [o.solve(p, args.horizon) for p in problems]
    times = {"solve, one call each": time.perf_counter() - t0}
    strategies = ["loop"] if args.skip_vmap else ["loop", "vmap"]
    for strategy in strategies:
        name = f"solve_many, {strategy}"
        t0 = time.perf_counter()
        runs[name] = o.solve_many(problems, args.horizon, strategy=strategy)
        times[name] = time.perf_counter() - t0
    ref = np.array([s.final_loss for s in runs["solve, one call each"]])
    head = f"{'method':<24} {'total':>8} {'per solve':>10} {'max |L / L_solve - 1|':>22}"
    print(head)
    print("-" * len(head))
    for name, sols in runs.items():
        diff = np.max(np.abs(np.array([s.final_loss for s in sols]) / ref - 1))
        print(f"{name:<24} {times[name]:>7.1f}s {times[name] / B:>9.2f}s {diff:>22.2e}")
    phases = [s.phase for s in runs["solve, one call each"]]
    print("phases: " + ", ".join(f"{p} {phases.count(p)}" for p in ("easy", "hard", "boundary")))


if __name__ == "__main__":
    main()
