"""optsched.solver.solve against the direct method, side by side on the same problems.

Direct method (the paper's notebooks, docs/model.md): every eta_t is a variable, the loss is the
exact
per-step recursion over exact modes, SciPy L-BFGS-B with a JAX gradient, eta in [0, lr_max].
Both results are re-evaluated with the exact per-step recursion over exact modes. Times include
compilation (a user pays it once per shape).

    python benchmarks/bench_solve.py                 # T in {1000, 5000}, easy and hard cases
    python benchmarks/bench_solve.py --large         # also T = 1e6, N = inf (optsched only)
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

import optsched as o
from optsched.dynamics.sgd import step_losses

CASES = [
    ("easy (docs/model.md reference)", dict(a=2.5, b=1.2, sigma=0.1, batch=4, features=500), 2.0),
    ("hard", dict(a=1.3, b=2.75, sigma=0.7, batch=4, features=1500), 1.0),
]


def exact_spec(problem):
    return o.spectrum(problem, o.mode_grid(problem.features, b=float(problem.b), method="exact"))


def exact_final(problem, schedule) -> float:
    lr, _, m = schedule.per_step(problem.batch)
    return float(step_losses(exact_spec(problem), lr, m)[-1])


def direct_method(problem, T, lr_max, init_lr):
    spec = exact_spec(problem)
    m = jnp.full(T, float(problem.batch))
    f = jax.jit(jax.value_and_grad(lambda lr: jnp.log(step_losses(spec, lr, m)[-1])))

    def fun(x):
        v, g = f(jnp.asarray(x))
        return float(v), np.asarray(g, dtype=float)

    t0 = time.perf_counter()
    res = minimize(
        fun,
        np.full(T, init_lr),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, lr_max)] * T,
        options={"maxiter": 5000, "ftol": 1e-13, "gtol": 1e-9},
    )
    return float(np.exp(res.fun)), time.perf_counter() - t0, int(res.nit)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--horizons", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--large", action="store_true")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, float64")
    head = (
        f"{'case':<28} {'T':>6} {'direct L_T':>11} {'time':>8} {'optsched L_T':>13} "
        f"{'time':>8} {'ratio L':>8} {'speed-up':>9}"
    )
    print(head)
    print("-" * len(head))
    for name, kw, lr_max in CASES:
        problem = o.PowerLawProblem(**kw)
        for T in args.horizons:
            t0 = time.perf_counter()
            sol = o.solve(problem, T, lr_max)
            t_ours = time.perf_counter() - t0
            ours = exact_final(problem, sol.schedule)
            init = 0.01 if problem.phase == "easy" else 1.0  # the paper code's initial guess
            ref, t_ref, _ = direct_method(problem, T, lr_max, min(init, lr_max))
            print(
                f"{name:<28} {T:>6} {ref:>11.5e} {t_ref:>7.1f}s {ours:>13.5e} {t_ours:>7.1f}s "
                f"{ours / ref:>8.5f} {t_ref / t_ours:>8.1f}x"
            )
    if args.large:
        for name, kw, lr_max in CASES:
            kw = dict(kw, features=math.inf)
            problem = o.PowerLawProblem(**kw)
            t0 = time.perf_counter()
            sol = o.solve(problem, 10**6, lr_max)
            t_ours = time.perf_counter() - t0
            print(
                f"{name + ', N=inf':<28} {10**6:>6} {'-':>11} {'-':>8} "
                f"{sol.final_loss:>13.5e} {t_ours:>7.1f}s   (direct method cannot run)"
            )
            print(
                "   margins over baselines: "
                + ", ".join(f"{k} {100 * v:.1f}%" for k, v in sol.margins().items())
            )


if __name__ == "__main__":
    main()
