"""Problems per second of ``solve_many`` against the number of devices.

Each device count runs in its own process (host CPU devices come from
``XLA_FLAGS=--xla_force_host_platform_device_count=N``; on a GPU machine pass ``--gpu`` to use
its devices instead): a grid of power-law problems (``a`` x ``b``, N = inf) solved at one horizon
with ``strategy="vmap"`` (sharded over the devices when there are several) and, for reference,
``strategy="loop"``. The first call compiles; the table reports the second, warm call.

    python benchmarks/bench_scale.py [--grid 4] [--horizon 1000] [--devices 1 2 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = """
import json, sys, time, jax, numpy as np, optsched as o
grid, T, strategy = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
problems = [o.PowerLawProblem(a, b) for a in np.linspace(1.3, 2.5, grid)
            for b in np.linspace(1.3, 2.5, grid)]
opt = o.LBFGS(knots=8, max_knots=32)
with o.float64():
    o.solve_many(problems, T, 0.5, optimiser=opt, strategy=strategy)  # compile
    t0 = time.perf_counter()
    sols = o.solve_many(problems, T, 0.5, optimiser=opt, strategy=strategy)
    dt = time.perf_counter() - t0
print(json.dumps({"devices": jax.local_device_count(), "backend": jax.default_backend(),
                  "seconds": dt, "problems": len(problems),
                  "loss": float(np.mean([s.final_loss for s in sols]))}))
"""


def _run(devices: int, grid: int, T: int, strategy: str, gpu: bool) -> dict:
    env = dict(os.environ)
    if not gpu:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(grid), str(T), strategy],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=1000)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--gpu", action="store_true", help="use the machine's own devices")
    args = parser.parse_args()
    print(f"{args.grid}x{args.grid} problems, T = {args.horizon}, N = inf; warm calls")
    print(f"{'devices':>8} {'strategy':>8} {'backend':>8} {'seconds':>9} {'problems/s':>11}")
    counts = [0] if args.gpu else args.devices
    base = None
    for d in counts:
        for strategy in ("vmap", "loop"):
            if strategy == "loop" and d not in (0, 1):
                continue
            r = _run(d, args.grid, args.horizon, strategy, args.gpu)
            rate = r["problems"] / r["seconds"]
            base = base or rate
            print(
                f"{r['devices']:>8} {strategy:>8} {r['backend']:>8} {r['seconds']:>9.2f} "
                f"{rate:>11.2f}  (x{rate / base:.2f}; mean loss {r['loss']:.6g})",
                flush=True,
            )


if __name__ == "__main__":
    main()
