"""Measured exponents of optimal schedules against theory, over decades of the horizon (N = inf).

For an easy-phase and a hard-phase problem, solve at T = 1e3 .. 1e6 and print per T: the final
loss of the optimum and of the best tuned constant and power law, the margins, the anneal
fraction, and the local exponents between consecutive horizons (loss, xi) next to theory.

    python benchmarks/bench_theory.py [--horizons 1000 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

import optsched as o
from optsched.model.theory import exponents, local_exponents, measure

CASES = [
    ("easy", dict(a=2.5, b=1.2, sigma=0.1, batch=4, features=math.inf), 2.0),
    ("hard", dict(a=1.3, b=2.75, sigma=0.7, batch=4, features=math.inf), 1.0),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--horizons", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    results = {}
    for name, kw, lr_max in CASES:
        problem = o.PowerLawProblem(**kw)
        theory = exponents(kw["a"], kw["b"])
        sols = []
        print(
            f"\n{name} phase: a={kw['a']}, b={kw['b']}, sigma={kw['sigma']}, m={kw['batch']}, "
            f"N=inf, lr <= {lr_max}"
        )
        print(
            f"{'T':>8} {'optimal L_T':>12} {'constant':>10} {'power law':>10} {'gain/const':>10} "
            f"{'gain/pow':>9} {'anneal frac':>11} {'eta*(T/2)':>10} {'time':>7}"
        )
        for T in args.horizons:
            t0 = time.perf_counter()
            sol = o.solve(problem, T, lr_max)
            dt = time.perf_counter() - t0
            sols.append(sol)
            c, p = sol.baselines["constant"].final_loss, sol.baselines["power_law"].final_loss
            lr = np.asarray(sol.schedule.lr_at(np.arange(T)))
            anneal = float(np.mean(lr < 0.95 * lr_max))
            print(
                f"{T:>8} {sol.final_loss:>12.5e} {c:>10.4e} {p:>10.4e} "
                f"{c / sol.final_loss - 1:>9.1%} {p / sol.final_loss - 1:>9.1%} "
                f"{anneal:>11.3f} {lr[T // 2]:>10.4g} {dt:>6.1f}s"
            )
        m = measure(sols)
        const = [s.baselines["constant"].final_loss for s in sols]
        print(
            f"local loss exponent (optimal):  {np.round(m['loss_exponent_local'], 3).tolist()}"
            f"   theory {theory.loss_optimal:.3f}"
        )
        print(
            f"local loss exponent (constant): "
            f"{np.round(-local_exponents(m['horizons'], const), 3).tolist()}"
            f"   theory {theory.loss_constant:.3f} (easy phase)"
        )
        print(
            f"local xi:                       {np.round(m['xi_local'], 3).tolist()}"
            f"   theory {theory.xi:.3f}"
        )
        if theory.phase == "easy":
            print(
                f"delta fitted on T={m['horizons'][-1]} over t/T in [0.5, 0.95]: "
                f"{m['delta']:.3f}   theory {theory.delta:.3f}"
            )
        else:
            frac = m["anneal_fraction"]
            slopes = local_exponents(m["horizons"], frac)
            print(
                f"anneal fraction (eta < 0.95 lr_max): {np.round(frac, 3).tolist()}; "
                f"local exponent {np.round(slopes, 2).tolist()}"
            )
        results[name] = {"measured": m, "theory": theory.to_dict(), "constant_final_loss": const}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
