"""How long ``optsched predict`` and ``optsched rank`` take, as new processes, for each model.

The multi-power-law authors' 25M curves (``--data``, default ``../shared/data``): each model is
fitted once (``optsched fit`` on cosine_24000, constant_24000 and wsdcon_9, the authors' fit
set), then ``predict`` (every logged step of the six held-out curves, ``--json``) and ``rank``
(the same six as candidates, with uncertainties) run as fresh processes: once with an empty
compilation cache (cold) and ``--repeats`` times with it filled (warm; the median is reported).
Wall-clock times include Python start-up and imports; the goal is 2 s.

    python benchmarks/bench_predict.py [--models plrf mpl convex] [--repeats 3]

Writes results/bench_predict.txt (about 2 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from real_curves import FIT
from real_curves import TEST as HELD_OUT


def _run(args: list[str], cache: str) -> float:
    env = {**os.environ, "OPTSCHED_CACHE_DIR": cache}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "optsched", *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"optsched {' '.join(args[:2])} failed:\n{out.stderr[-2000:]}")
    return elapsed


def main() -> None:
    here = pathlib.Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(here.parent.parent / "shared" / "data"))
    parser.add_argument("--models", nargs="+", default=["plrf", "mpl", "convex"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = pathlib.Path(args.data) / "multipowerlaw" / "csv_25"
    fit_runs = [str(folder / f"{n}.csv") for n in FIT]
    held_out = [str(folder / f"{n}.csv") for n in HELD_OUT]
    lines = [
        "optsched predict / rank of the six held-out 25M curves, new process each (2 s goal)",
        f"{'model':>7} {'fit':>8} {'predict cold':>13} {'predict warm':>13} "
        f"{'rank cold':>10} {'rank warm':>10}",
    ]
    print(lines[0], "\n" + lines[1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.models:
            model = os.path.join(tmp, f"{kind}.json")
            fit_cache = os.path.join(tmp, f"fit-{kind}")
            fit_s = _run(["fit", *fit_runs, "--model", kind, "--save-model", model], fit_cache)
            row = [f"{kind:>7}", f"{fit_s:7.1f}s"]
            for command in ("predict", "rank"):
                cache = os.path.join(tmp, f"{command}-{kind}")  # empty: a cold cache
                argv = [command, model, *held_out, "--json"]
                cold = _run(argv, cache)
                warm = statistics.median(_run(argv, cache) for _ in range(args.repeats))
                width = 13 if command == "predict" else 10
                row += [f"{cold:{width - 1}.2f}s", f"{warm:{width - 1}.2f}s"]
            lines.append(" ".join(row))
            print(lines[-1], flush=True)
    out = here / "results" / "bench_predict.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
