"""Per-step scan vs closed-form block propagation vs continuous-time ODE.

For (T, N) in {(1e3, 500), (1e5, 1e5), (1e6, inf)} and one piecewise-constant schedule on K knots
(log-spaced at the start, dense before the end), print per method: the time of one loss
evaluation and of one loss+gradient evaluation after compilation (best of a few runs), the memory
XLA plans for the gradient (arguments + outputs + temporaries), the final loss, and its relative
difference from the exact per-step recursion over exact modes (or over quadrature nodes for
N = inf, where exact modes cannot run).

The scan's gradient is timed twice: by JAX's reverse mode of ``lax.scan`` and by the adjoint
recursion (``step_final_loss``, ``momentum_final_loss``: what the solver runs).

Momentum (second table): the per-step moment recursion against the closed-form blocks
(binary powering of the moment map, ``propagate_momentum_blocks``) at T = 1e4, 1e5, 1e6, N = inf,
both on the quadrature, the momentum varying from knot to knot.

    python benchmarks/bench_dynamics.py            # full tables (a few minutes on 2 cores)
    python benchmarks/bench_dynamics.py --quick    # skip the slow exact-mode gradient at 1e5
    python benchmarks/bench_dynamics.py --momentum-only
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import optsched as o
from optsched.dynamics.momentum import (
    momentum_final_loss,
    momentum_losses,
    propagate_momentum_blocks,
)
from optsched.dynamics.sgd import propagate_blocks, step_final_loss, step_losses
from optsched.schedule import expand, knot_blocks

PROBLEM = dict(a=2.5, b=1.2, sigma=0.1, batch=4.0)


def knot_schedule(T: int, K: int, peak: float) -> o.Schedule:
    half = K // 2
    head = np.round(np.geomspace(1, T / 2, half))
    tail = np.round(T - np.geomspace(T / 2, 1, half))
    steps = np.unique(np.concatenate([[0], head, tail, [T - 1]])).astype(np.int64)
    steps = steps[steps <= T - 1]
    lr = peak * np.minimum(1.0, (steps + 1) / 20.0) * (1.0 - steps / T) ** 1.5 + 1e-3 * peak
    return o.Schedule(steps, lr, horizon=T, interpolation="previous")


def timed(fn, *args, repeats=3):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    if first > 20:  # slow cases: one timed run after compilation is enough
        repeats = 1
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return out, best


def planned_bytes(fn, *args) -> float:
    try:
        m = jax.jit(fn).lower(*args).compile().memory_analysis()
        return float(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)
    except Exception:  # memory analysis is backend dependent
        return math.nan


def fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "-"
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def fmt_bytes(b: float) -> str:
    if not math.isfinite(b):
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024:
            return f"{b:.0f} {unit}"
        b /= 1024
    return f"{b:.1f} TB"


def run_case(T: int, N, K: int, quick: bool):
    p = o.PowerLawProblem(features=N, **PROBLEM)
    quad_probe = o.spectrum(p, o.mode_grid(N, b=PROBLEM["b"], max_time=1.0, method="auto"))
    peak = 0.5 * float(o.max_stable_lr(quad_probe, PROBLEM["batch"]))
    sched = knot_schedule(T, K, peak)
    F = sched.intrinsic_time()
    lr_knots = sched.lr
    starts, lengths = knot_blocks(sched)
    m_knots = jnp.full_like(lr_knots, PROBLEM["batch"])
    quad = o.spectrum(p, o.mode_grid(N, b=PROBLEM["b"], max_time=F, method="quadrature"))
    rows = []

    # --- per-step scan (exact modes when N is finite) ------------------------------------
    exact_ok = math.isfinite(N)
    scan_spec = o.spectrum(p, o.mode_grid(N, b=PROBLEM["b"], method="exact")) if exact_ok else quad
    chunk = max(int(math.sqrt(T)), 1) if T > 10_000 else None
    t_all = jnp.arange(T)

    def expand_knots(lr):  # the one expansion rule, as the file and the export use it
        return expand(sched.steps, lr, t_all, "previous")

    def scan_loss(lr):
        return step_losses(
            scan_spec, expand_knots(lr), jnp.full(T, PROBLEM["batch"]), checkpoint_every=chunk
        )[-1]

    ref, t_fwd = timed(jax.jit(scan_loss), lr_knots)
    skip_gradient = quick and exact_ok and T * scan_spec.size > 1e9
    if skip_gradient:
        t_grad, mem = math.nan, math.nan
    else:
        _, t_grad = timed(jax.jit(jax.value_and_grad(scan_loss)), lr_knots, repeats=2)
        mem = planned_bytes(jax.value_and_grad(scan_loss), lr_knots)
    label = "scan, exact modes" if exact_ok else "scan, quadrature"
    rows.append((label, scan_spec.size, t_fwd, t_grad, mem, float(ref), 0.0))

    # the same scan, differentiated by the adjoint recursion (what the solver runs)
    def adjoint_loss(lr):
        return step_final_loss(scan_spec, expand_knots(lr), jnp.full(T, PROBLEM["batch"]))

    if skip_gradient:
        val, t_grad, mem = math.nan, math.nan, math.nan
    else:
        (val, _), t_grad = timed(jax.jit(jax.value_and_grad(adjoint_loss)), lr_knots, repeats=2)
        mem = planned_bytes(jax.value_and_grad(adjoint_loss), lr_knots)
    label = "scan + adjoint, " + ("exact" if exact_ok else "quadrature")
    rows.append(
        (label, scan_spec.size, t_fwd, t_grad, mem, float(val), float(val) / float(ref) - 1)
    )
    scan_grad_time = t_grad

    # --- closed-form blocks on the quadrature -------------------------------------------
    def block_loss(lr):
        return propagate_blocks(quad, lr, m_knots, jnp.asarray(lengths, float))[0][-1]

    val, t_fwd = timed(jax.jit(block_loss), lr_knots, repeats=5)
    _, t_grad = timed(jax.jit(jax.value_and_grad(block_loss)), lr_knots, repeats=5)
    mem = planned_bytes(jax.value_and_grad(block_loss), lr_knots)
    rows.append(
        (
            "blocks, quadrature",
            quad.size,
            t_fwd,
            t_grad,
            mem,
            float(val),
            float(val) / float(ref) - 1,
        )
    )
    block_grad_time = t_grad

    # --- continuous-time ODE on the quadrature ------------------------------------------
    dyn = o.ContinuousTime(save_points=2)

    def ode_loss(lr):
        s = o.Schedule(sched.steps, lr, horizon=T, interpolation="previous")
        return dyn.loss_curve(quad, s, PROBLEM["batch"]).final_loss

    val, t_fwd = timed(jax.jit(ode_loss), lr_knots)
    _, t_grad = timed(jax.jit(jax.value_and_grad(ode_loss)), lr_knots, repeats=1)
    mem = planned_bytes(jax.value_and_grad(ode_loss), lr_knots)
    rows.append(
        (
            "ODE (Kvaerno5, log time)",
            quad.size,
            t_fwd,
            t_grad,
            mem,
            float(val),
            float(val) / float(ref) - 1,
        )
    )
    return rows, scan_grad_time / block_grad_time, len(lr_knots)


def momentum_case(T: int, K: int):
    """Per-step moment recursion against closed-form momentum blocks, N = inf."""
    p = o.PowerLawProblem(features=math.inf, **PROBLEM)
    quad_probe = o.spectrum(p, o.mode_grid(math.inf, b=PROBLEM["b"], max_time=1.0))
    peak = 0.25 * float(o.max_stable_lr(quad_probe, PROBLEM["batch"]))
    sched = knot_schedule(T, K, peak)
    _, lengths = knot_blocks(sched)
    quad = o.spectrum(p, o.mode_grid(math.inf, b=PROBLEM["b"], max_time=sched.intrinsic_time() * 4))
    lr = jnp.asarray(sched.lr)
    beta = jnp.asarray(0.9 - 0.8 * np.asarray(sched.steps) / T)  # 0.9 falling to 0.1
    m_knots = jnp.full_like(lr, PROBLEM["batch"])
    idx = jnp.asarray(np.repeat(np.arange(len(lengths)), lengths))
    chunk = max(int(math.sqrt(T)), 1) if T > 10_000 else None

    def scan_loss(lr, beta):
        m = jnp.full(T, PROBLEM["batch"])
        return momentum_losses(quad, lr[idx], beta[idx], m, checkpoint_every=chunk)[-1]

    def adjoint_loss(lr, beta):
        m = jnp.full(T, PROBLEM["batch"])
        return momentum_final_loss(quad, lr[idx], beta[idx], m)

    def block_loss(lr, beta):
        return propagate_momentum_blocks(quad, lr, beta, m_knots, jnp.asarray(lengths, float))[0][
            -1
        ]

    rows = []
    cases = (
        ("momentum scan", scan_loss),
        ("momentum scan + adjoint", adjoint_loss),
        ("momentum blocks", block_loss),
    )
    for label, fn in cases:
        val, t_fwd = timed(jax.jit(fn), lr, beta)
        _, t_grad = timed(jax.jit(jax.value_and_grad(fn, argnums=(0, 1))), lr, beta, repeats=2)
        mem = planned_bytes(jax.value_and_grad(fn, argnums=(0, 1)), lr, beta)
        rows.append((label, quad.size, t_fwd, t_grad, mem, float(val)))
    ref = rows[0][5]
    return [(*r, r[5] / ref - 1) for r in rows], rows[1][3] / rows[2][3], len(lengths)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--knots", type=int, default=64)
    parser.add_argument("--momentum-only", action="store_true")
    args = parser.parse_args()
    with o.float64():
        tables(args)


def tables(args):
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, float64; problem {PROBLEM}")
    if not args.momentum_only:
        plain_sgd_table(args)
    header = (
        f"{'T':>8} {'N':>7} {'method':<26} {'modes':>6} {'loss':>10} {'loss+grad':>10} "
        f"{'memory':>9} {'final L_T':>11} {'rel. diff':>9}"
    )
    print()
    print(header)
    print("-" * len(header))
    ratios = []
    for T in (10**4, 10**5, 10**6):
        rows, ratio, K = momentum_case(T, 2 * args.knots)
        for label, n, tf, tg, mem, val, rel in rows:
            print(
                f"{T:>8.0e} {'inf':>7} {label:<26} {n:>6} {fmt_time(tf):>10} "
                f"{fmt_time(tg):>10} {fmt_bytes(mem):>9} {val:>11.5e} {rel:>9.1e}"
            )
        ratios.append((T, K, ratio))
    print()
    for T, K, ratio in ratios:
        print(
            f"momentum T={T:.0e} N=inf: K={K} knots; gradient speed-up of blocks over the "
            f"adjoint scan: {ratio:,.1f}x"
        )


def plain_sgd_table(args):
    header = (
        f"{'T':>8} {'N':>7} {'method':<26} {'modes':>6} {'loss':>10} {'loss+grad':>10} "
        f"{'memory':>9} {'final L_T':>11} {'rel. diff':>9}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for T, N in ((10**3, 500), (10**5, 10**5), (10**6, math.inf)):
        rows, ratio, K = run_case(T, N, args.knots, args.quick)
        for label, n, tf, tg, mem, val, rel in rows:
            print(
                f"{T:>8.0e} {str(N):>7} {label:<26} {n:>6} {fmt_time(tf):>10} "
                f"{fmt_time(tg):>10} {fmt_bytes(mem):>9} {val:>11.5e} {rel:>9.1e}"
            )
        ratios.append((T, N, K, ratio))
    print()
    for T, N, K, ratio in ratios:
        print(
            f"T={T:.0e} N={N}: K={K} knots; gradient speed-up of blocks over the adjoint scan: "
            f"{ratio:,.0f}x"
        )


if __name__ == "__main__":
    main()
