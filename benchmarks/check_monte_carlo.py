"""Agreement of the exact recursions with Monte-Carlo SGD on sampled Gaussian data.

Prints, for each case, the recursion's loss, the Monte-Carlo mean +- standard error and the
z-score at logged steps, and the largest |z| (tests require < 3).

    python benchmarks/check_monte_carlo.py [--runs 1024]
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np

import optsched as o
from optsched.dynamics.sgd import step_losses

T = 300
LOGGED = [1, 3, 10, 30, 100, 200, 300]
PROBLEM = o.PowerLawProblem(2.0, 1.5, sigma=0.3, batch=4, features=30, teacher_modes=60)


def cases():
    yield "SGD, constant lr 0.4", o.Schedule.constant(0.4, T), "ema"
    yield (
        "SGD, decaying 0.6(1-t/T)^1.5",
        o.Schedule.from_function(lambda t: 0.6 * (1 - t / T) ** 1.5 + 0.02, T),
        "ema",
    )
    yield (
        "EMA momentum 0.9->0.5, lr 0.3->0.1",
        o.Schedule([0, T - 1], [0.3, 0.1], momentum=[0.9, 0.5], horizon=T),
        "ema",
    )
    yield (
        "heavy ball 0.9->0.5, lr 0.05->0.02",
        o.Schedule([0, T - 1], [0.05, 0.02], momentum=[0.9, 0.5], horizon=T),
        "heavy_ball",
    )
    yield (
        "batch ramp 1->16, lr 0.3",
        o.Schedule([0, T - 1], [0.3, 0.3], batch=[1, 16], horizon=T),
        "ema",
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1024)
    args = parser.parse_args()
    print(
        f"problem a=2, b=1.5, sigma=0.3, m=4, N=30 student / M=60 teacher modes; "
        f"{args.runs} runs each"
    )
    for i, (name, sched, form) in enumerate(cases()):
        sim = o.simulate(PROBLEM, sched, runs=args.runs, seed=100 + i, form=form)
        if sched.batch is not None:  # the simulator rounds batch sizes to integers
            lr, _, m = sched.per_step(4.0)
            pred = step_losses(o.make_spectrum(PROBLEM, sched), lr, jnp.round(m))
        else:
            pred = o.loss_curve(PROBLEM, sched, method="scan", form=form).loss
        pred, mean, se = (np.asarray(x) for x in (pred, sim.mean, sim.stderr))
        z = (pred - mean) / se
        print(f"\n{name}  (max |z| over logged steps = {np.max(np.abs(z[LOGGED])):.2f})")
        print(f"{'step':>6} {'recursion':>11} {'Monte-Carlo':>11} {'+- s.e.':>9} {'z':>6}")
        for t in LOGGED:
            print(f"{t:>6} {pred[t]:>11.5f} {mean[t]:>11.5f} {se[t]:>9.5f} {z[t]:>6.2f}")


if __name__ == "__main__":
    main()
