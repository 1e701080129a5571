"""Where the time of one ``optsched solve`` goes, as a new process, against the direct method.

The problem of issue 15: ``optsched solve --horizon 5000 --lr-max 2 --features 500`` (the CLI's
built-in example problem). Each row is a fresh Python process that imports optsched and runs the
CLI; JAX's own monitoring events split its time into import, tracing, lowering (jaxpr to MLIR)
and XLA compilation, the rest being the optimisation itself and Python. Rows: a cold
compilation cache (an empty folder), the same command again (warm cache), and the cache turned
off (``OPTSCHED_CACHE_DIR=""``). The direct method (every step a variable, SciPy L-BFGS-B with
a JAX gradient, exact modes; ``bench_solve.direct_method``) runs on the same problem in this
process; both final losses are recomputed by the exact per-step recursion.

    python benchmarks/bench_startup.py            # about 1 minute on 2 CPU cores

Writes results/bench_startup.txt.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ARGV = ["solve", "--horizon", "5000", "--lr-max", "2", "--features", "500"]
EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
}


def child(out: str) -> None:
    """Run the CLI once and print the time split as JSON (called in a fresh process)."""
    t0 = time.perf_counter()
    import jax

    from optsched import cli

    times = {"import": time.perf_counter() - t0, "trace": 0.0, "lower": 0.0, "compile": 0.0}
    counts = {"compilations": 0, "cache_hits": 0}

    def on_duration(event, duration, **_):
        if event in EVENTS:
            times[EVENTS[event]] += duration
            counts["compilations"] += event.endswith("backend_compile_duration")

    def on_event(event, **_):
        counts["cache_hits"] += event == "/jax/compilation_cache/cache_hits"

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    t1 = time.perf_counter()
    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            code = cli.main([*ARGV, "--out", out])
        finally:
            sys.stdout = stdout
    times["run"] = time.perf_counter() - t1
    print(json.dumps({"code": code, **times, **counts}))


def run_child(out: pathlib.Path, cache: str) -> dict:
    env = dict(os.environ, OPTSCHED_CACHE_DIR=cache)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record["wall"] = time.perf_counter() - t0
    return record


def main() -> int:
    import jax

    import optsched as o
    from optsched.dynamics.sgd import step_losses

    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from bench_solve import direct_method, exact_spec

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = pathlib.Path(tmp) / "cache"
        out = pathlib.Path(tmp) / "schedule.json"
        for label, folder in (
            ("cold cache", str(cache)),
            ("warm cache", str(cache)),
            ("no cache", ""),
        ):
            rows.append((label, run_child(out, folder)))
        saved = o.load(out)
    problem = saved.problem
    with o.float64():
        lr, _, m = saved.schedule.per_step(problem.batch)
        ours = float(step_losses(exact_spec(problem), lr, m)[-1])
        ref, t_ref, iters = direct_method(problem, 5000, 2.0, 0.01)
    lines = [
        f"# benchmarks/bench_startup.py: optsched {' '.join(ARGV)}, new process each row",
        f"# jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} CPU cores",
        "",
        "| run | wall s | import | trace | lower | compile | rest (solve) | compilations | "
        "cache hits | direct method / wall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        rest = r["run"] - r["trace"] - r["lower"] - r["compile"]
        lines.append(
            f"| {label} | {r['wall']:.2f} | {r['import']:.2f} | {r['trace']:.2f} | "
            f"{r['lower']:.2f} | {r['compile']:.2f} | {rest:.2f} | {r['compilations']} | "
            f"{r['cache_hits']} | {t_ref / r['wall']:.1f}x |"
        )
    lines += [
        "",
        f"direct method: L_T = {ref:.6e} in {t_ref:.1f} s ({iters} L-BFGS-B iterations); "
        f"optsched: L_T = {ours:.6e} (ratio {ours / ref:.5f}), both by the exact recursion",
    ]
    text = "\n".join(lines)
    print(text)
    (pathlib.Path(__file__).parent / "results" / "bench_startup.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        raise SystemExit(0)
    raise SystemExit(main())
