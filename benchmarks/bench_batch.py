"""Batch-size schedules at a fixed sample budget: steps saved, and the shape of the ramp.

For an easy- and a hard-phase problem (N = infinity), a sample budget D and horizons T from
D/32 to D/2 (mean batch 32 down to 2, batch sizes within [1, 64]), solve the joint (eta, m)
problem and the learning rate alone at the constant batch D/T (lr cap: 99% of the largest stable
constant rate at that batch). The target loss is the one the
constant batch reaches at the middle horizon; report the fewest steps to reach it with and
without the ramp, and the exponent of the ramp m*(t) ~ (1 - t/T)^p fitted on t/T in
[0.5, 0.95], against theory p = 1/(2b) - 1 (docs/model.md).

    python benchmarks/bench_batch.py [--budget 16384]
"""

from __future__ import annotations

import argparse
import pathlib
import time

import optsched as o
from optsched.model.theory import exponents
from optsched.wallclock import budget_sweep, ramp_exponent

CASES = [
    ("easy", dict(a=2.5, b=1.2, sigma=0.1, batch=1), None),
    ("hard", dict(a=1.3, b=2.75, sigma=0.7, batch=1), None),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=16384.0)
    args = parser.parse_args()
    D = args.budget
    horizons = [int(D / m) for m in (32, 16, 8, 4, 2)]
    lines = [
        f"# benchmarks/bench_batch.py --budget {D:g}; batch sizes in [1, 64]; N = inf",
        "",
        "| phase | T | mean batch D/T | L* constant batch | L* with ramp | gain | "
        "ramp exponent (theory) |",
        "|---|---|---|---|---|---|---|",
    ]
    summary = []
    for name, kw, lr_max in CASES:
        problem = o.PowerLawProblem(**kw)
        t0 = time.perf_counter()
        sweep = budget_sweep(
            problem,
            D,
            horizons,
            lr_max,
            batch_range=(1.0, 64.0),
            progress=lambda msg: print(msg, flush=True),
        )
        target = float(sweep.loss_constant[len(horizons) // 2])
        t_ramp, t_const = sweep.steps_to(target)
        p_theory = exponents(kw["a"], kw["b"]).batch_ramp
        for T, lc, lr_, sol in zip(
            sweep.horizons, sweep.loss_constant, sweep.loss_ramp, sweep.solutions, strict=True
        ):
            lines.append(
                f"| {name} | {T} | {D / T:g} | {lc:.6g} | {lr_:.6g} | "
                f"{100 * (lc / lr_ - 1):.2f}% | {ramp_exponent(sol):+.3f} "
                f"({p_theory:+.3f}) |"
            )
        summary.append(
            f"{name}: target L = {target:.6g} (constant batch at T = "
            f"{sweep.horizons[len(horizons) // 2]}): fewest steps {t_const:.0f} "
            f"constant, {t_ramp:.0f} with the ramp, {100 * (1 - t_ramp / t_const):.1f}% "
            f"saved ({time.perf_counter() - t0:.0f} s)"
        )
    text = "\n".join(lines + [""] + summary)
    print(text)
    out = pathlib.Path(__file__).parent / "results" / "bench_batch.txt"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
