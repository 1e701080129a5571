"""End to end on a real network: pilot runs -> fit -> solve -> train with the solved schedule.

The byte-level language model of ``examples/char_lm.py`` (small: 2 layers, width 64, AdamW, 800
steps) was trained by ``benchmarks/fit_char_lm.py`` with two pilot schedules at peak 0.016 (a
constant rate and a 10% cooldown; their validation curves are saved in
``results/fit_char_lm_curves.json``). Here each loss model is fitted to those pilots, the optimal
schedule for T = 800 is solved under it with the pilots' peak as the cap, and the network is
trained with it, against cosine and WSD (20% linear cooldown) at the same peak, every schedule
with the pilots' 2% linear warm-up, over the same seeds (same data order per seed).

    python benchmarks/end_to_end_char_lm.py [--seeds 3]   # about 6 minutes on 2 CPU cores

Prints the table (mean final validation loss, its spread over seeds, and the paired difference
to cosine) and writes results/end_to_end_char_lm.txt.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import optsched as o

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import char_lm  # noqa: E402

PEAK, EVALS, FIT_FROM = 0.016, 40, 100


def warmup(T: int, fraction: float = 0.02) -> np.ndarray:
    """The linear warm-up factor ``min(1, (t + 1) / round(fraction T))`` of every run, ``(T,)``."""
    return np.minimum(1.0, (np.arange(T) + 1) / max(1, round(fraction * T)))


def pilot_runs(T: int) -> list[o.PilotRun]:
    """The two pilots saved by ``fit_char_lm.py`` (constant and 10% cooldown at PEAK, 2%
    warm-up), from step FIT_FROM on."""
    out = pathlib.Path(__file__).parent / "results"
    data = json.loads((out / "fit_char_lm_curves.json").read_text())
    cooldown = np.asarray(o.to_optax(o.family("wsd", 1.0, T, cooldown=0.1))(np.arange(T)))
    pilot_shapes = {"constant": warmup(T), "cooldown": warmup(T) * cooldown}
    steps = np.arange(1, EVALS + 1) * (T // EVALS)
    keep = steps >= FIT_FROM
    return [
        o.PilotRun(
            o.Schedule(np.arange(T), PEAK * shape, horizon=T),
            steps[keep],
            np.asarray(data["curves"][name])[keep],
            name=name,
        )
        for name, shape in pilot_shapes.items()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    t_start = time.perf_counter()
    cfg = dict(char_lm.SIZES["small"])
    T = cfg["steps"]
    out = pathlib.Path(__file__).parent / "results"
    pilots = pilot_runs(T)
    schedules = {}
    for label, fitter in (
        ("solved (plrf fit)", o.fit),
        ("solved (convex fit)", o.fit_convex_bound),
    ):
        model = fitter(pilots)
        sol = o.solve(model, T, PEAK)
        lr = np.asarray(sol.schedule.per_step(1.0)[0]) * warmup(T)
        schedules[label] = lr
        print(
            f"{label}: predicted {sol.final_loss:.4f}; rate at 0, T/2, T-1: "
            f"{lr[0]:.4g} {lr[T // 2]:.4g} {lr[-1]:.4g} ({time.perf_counter() - t_start:.0f} s)",
            flush=True,
        )
    for name, kw in (("cosine", {}), ("wsd 20%", {"cooldown": 0.2})):
        base = np.asarray(o.to_optax(o.family(name.split()[0], 1.0, T, **kw))(np.arange(T)))
        schedules[name] = PEAK * warmup(T) * base

    train, val = char_lm.corpus()
    run = char_lm.make_trainer(cfg, train, val, evals=EVALS)
    finals = {}
    for name, lr in schedules.items():
        lr32 = jnp.asarray(lr, dtype=char_lm.F32)
        finals[name] = np.array(
            [float(np.asarray(run(jax.random.PRNGKey(s), lr32)[0])[-1]) for s in range(args.seeds)]
        )
        print(
            f"{name:<20} final val loss {finals[name].mean():.4f} "
            f"({time.perf_counter() - t_start:.0f} s)",
            flush=True,
        )
    n = args.seeds
    lines = [
        f"# benchmarks/end_to_end_char_lm.py: char_lm small, T = {T}, peak {PEAK} for every "
        f"schedule, {n} seeds; pilots constant + 10% cooldown; "
        f"{(time.perf_counter() - t_start) / 60:.1f} min",
        "",
        "| schedule | mean final val loss | +- s.e. over seeds | minus cosine (paired) |",
        "|---|---|---|---|",
    ]
    for name, f in finals.items():
        d = f - finals["cosine"]
        se = f.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        dse = d.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        lines.append(f"| {name} | {f.mean():.4f} | {se:.4f} | {d.mean():+.4f} +- {dse:.4f} |")
    text = "\n".join(lines)
    print(text)
    (out / "end_to_end_char_lm.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
