"""The convex last-iterate bound: evaluation time, a fit on real 50k-step runs, and the
gradient-norm refinement against a direct minimisation of the bound.

1. Omega_T at T = 5e4 (the loss after all steps: one pass of cumulative sums) and the full
   curve Omega_1 .. Omega_T (O(T^2)), jitted, median of repeats.
2. `fit_convex_bound` on the 210M constant run and its shortest cooldown (W&B exports, 40000 and
   22222 steps), wall time.
3. The refinement eta_t ~ g_t^-2 sum_{p>t} g_p^-2, and the weighting by sum_{p>t} g_p^2 that
   optsched 0.2 used, each at its best peak, against L-BFGS-B over all T rates (the lower of
   two starts), for rising, falling, bump-shaped and measured norms (a 124M run's gradient
   norms resampled to T steps).

Usage: python benchmarks/convex_bound.py [--data ../shared/data] [--sizes 100 400]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from optsched import float64
from optsched.loss_models.convex import (
    best_peak_bound,
    convex_bound,
    convex_bound_at,
    direct_minimum,
    fit_convex_bound,
)
from optsched.runs import read_run


def _timed(fn, repeats=5):
    fn()  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def evaluation_times(T: int = 50_000) -> None:
    lr = jnp.asarray(np.linspace(1.0, 0.0, T))
    final = jax.jit(lambda x: convex_bound_at(x, jnp.array([T]), 1.0, 0.5))
    grad = jax.jit(jax.grad(lambda x: convex_bound_at(x, jnp.array([T]), 1.0, 0.5)[0]))
    print(f"Omega_T at T = {T}:           {1e3 * _timed(lambda: final(lr)):8.2f} ms")
    print(f"its gradient in all T rates:   {1e3 * _timed(lambda: grad(lr)):8.2f} ms")
    short = 5_000
    curve = jax.jit(lambda x: convex_bound(x, 1.0, 0.5))
    x = jnp.asarray(np.linspace(1.0, 0.0, short))
    print(f"full curve at T = {short} (O(T^2)): {1e3 * _timed(lambda: curve(x), 2):8.2f} ms")


def real_fit(data: pathlib.Path) -> None:
    folder = data / "lr-scheduling"
    files = [
        next(folder.glob("stable-210m*.json")),
        next(folder.glob("ann210-0.2_*iter22222*.json")),
    ]
    runs = [read_run(f)[0] for f in files]
    t0 = time.perf_counter()
    model = fit_convex_bound(runs)
    print(
        f"convex fit on {len(runs)} runs of {max(r.schedule.horizon for r in runs)} steps: "
        f"{time.perf_counter() - t0:.1f} s (u = {model.u:.4g}, v = {model.v:.4g}, "
        f"floor = {model.loss_floor:.4g})"
    )


def refinement(data: pathlib.Path, sizes) -> list[dict]:
    measured = json.loads(
        (data / "lr-scheduling" / "grad_norms" / "cos-zero-124m_lr0.001.json").read_text()
    )
    g_meas = np.asarray(measured["history"]["train"]["grad_norm"], dtype=float)
    rows = []
    print(f"\n{'T':>5} {'norms':>9} {'direct min':>11} {'g^-2 (now)':>11} {'g^2 (0.2)':>10}")
    for T in sizes:
        t = np.arange(T)
        profiles = {
            "rising": np.linspace(1.0, 3.0, T),
            "falling": np.linspace(3.0, 1.0, T),
            "bump": 1.0 + np.exp(-(((t - T / 2) / (T / 8)) ** 2)),
            "measured": g_meas[np.linspace(0, g_meas.size - 1, T).astype(int)],
        }
        for name, g in profiles.items():
            g2 = g**2
            later = lambda a: np.concatenate([np.cumsum(a[::-1])[::-1][1:], [0.0]])  # noqa: E731
            now = later(1.0 / g2) / g2
            old = later(g2) / g2
            linear = (T - t) / T
            starts = (now / math.sqrt(T), linear / math.sqrt(T))
            direct = min(direct_minimum(g2, start) for start in starts)
            ex_now = best_peak_bound(now, g2) / direct - 1
            ex_old = best_peak_bound(old, g2) / direct - 1
            print(f"{T:>5} {name:>9} {direct:11.5g} {ex_now:+11.2%} {ex_old:+10.2%}", flush=True)
            rows.append({"T": T, "norms": name, "excess_now": ex_now, "excess_old": ex_old})
    return rows


def main() -> None:
    here = pathlib.Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(here.parents[1] / "shared" / "data"))
    parser.add_argument("--sizes", nargs="*", type=int, default=[100, 400])
    args = parser.parse_args()
    data = pathlib.Path(args.data)
    with float64():
        evaluation_times()
        real_fit(data)
        refinement(data, args.sizes)


if __name__ == "__main__":
    main()
