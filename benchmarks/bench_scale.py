"""Problems per second of ``solve_many`` against the number of devices and of processes.

Each configuration runs in fresh processes (host CPU devices come from
``XLA_FLAGS=--xla_force_host_platform_device_count=N``; on a GPU machine pass ``--gpu`` to use
its devices instead): a grid of power-law problems (``a`` x ``b``, N = inf) solved at one horizon
with ``strategy="vmap"`` (sharded over a process's devices when it has several) or
``strategy="loop"``, in one process or in several joined by ``optsched.distributed.initialize``
(the solves split over the processes, then gathered). The first call compiles; the table reports
the second, warm call (the slowest process's time, gathering included).

    python benchmarks/bench_scale.py [--grid 4] [--horizon 1000] [--devices 1 2 4] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys

CHILD = """
import json, sys, time
grid, T, strategy, processes, pid, port = sys.argv[1:7]
import optsched as o
if int(processes) > 1:
    o.distributed.initialize(f"127.0.0.1:{port}", int(processes), int(pid))
import jax, numpy as np
problems = [o.PowerLawProblem(a, b) for a in np.linspace(1.3, 2.5, int(grid))
            for b in np.linspace(1.3, 2.5, int(grid))]
opt = o.LBFGS(knots=8, max_knots=32)
with o.float64():
    o.solve_many(problems, int(T), 0.5, optimiser=opt, strategy=strategy)  # compile
    t0 = time.perf_counter()
    sols = o.solve_many(problems, int(T), 0.5, optimiser=opt, strategy=strategy)
    dt = time.perf_counter() - t0
print(json.dumps({"devices": jax.local_device_count(), "backend": jax.default_backend(),
                  "seconds": dt, "problems": len(problems),
                  "loss": float(np.mean([s.final_loss for s in sols]))}))
"""


def _run(processes: int, devices: int, grid: int, T: int, strategy: str, gpu: bool) -> dict:
    env = dict(os.environ)
    if not gpu:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        env["JAX_PLATFORMS"] = "cpu"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [str(grid), str(T), strategy, str(processes)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, *args, str(p), str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(processes)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(err[-2000:])
        results.append(json.loads(out.strip().splitlines()[-1]))
    slowest = max(results, key=lambda r: r["seconds"])
    return dict(slowest, devices=sum(r["devices"] for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=1000)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--processes", type=int, nargs="+", default=[2])
    parser.add_argument("--gpu", action="store_true", help="use the machine's own devices")
    args = parser.parse_args()
    print(f"{args.grid}x{args.grid} problems, T = {args.horizon}, N = inf; warm calls")
    head = f"{'processes':>9} {'devices':>8} {'strategy':>8} {'backend':>8} {'seconds':>9}"
    print(f"{head} {'problems/s':>11}")
    # the first row (one process, one device, loop: the CPU default) is the reference
    configs = [(1, 0 if args.gpu else 1, "loop")]
    configs += [(1, 0, "vmap")] if args.gpu else [(1, d, "vmap") for d in args.devices]
    if not args.gpu:
        configs += [(p, 1, "loop") for p in args.processes]
        configs += [(p, 2, "vmap") for p in args.processes]
    base = None
    for processes, devices, strategy in configs:
        r = _run(processes, devices, args.grid, args.horizon, strategy, args.gpu)
        rate = r["problems"] / r["seconds"]
        base = base or rate
        print(
            f"{processes:>9} {r['devices']:>8} {strategy:>8} {r['backend']:>8} "
            f"{r['seconds']:>9.2f} {rate:>11.2f}  (x{rate / base:.2f}; mean loss {r['loss']:.6g})",
            flush=True,
        )


if __name__ == "__main__":
    main()
