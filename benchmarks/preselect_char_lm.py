"""Divergence prediction and schedule pre-selection from pilot runs, checked by training.

The byte-level language model of ``examples/char_lm.py`` (small, AdamW, 800 steps). The loss
models are fitted to the two pilots of ``fit_char_lm.py`` (constant and 10% cooldown at peak
0.016, saved in ``results/fit_char_lm_curves.json``).

1. Divergence: the power-law model's largest stable peak for each family
   (``FittedProblem.max_stable_peak``, what ``optsched max-peak`` prints) against a ladder of
   real runs at peaks 0.008 x 2^k (k = 0 .. 7), cosine and constant, 2% warm-up. A run diverged
   when its final validation loss is not finite or above ln 256 (worse than guessing bytes
   uniformly); predicted to diverge when its peak is above the predicted edge. Precision, recall
   and F1 of "diverges". AdamW's normalised steps rarely blow up, so the same check is run with
   plain SGD too (the model's own optimiser): SGD pilots at 0.1 trained here, a cosine ladder
   0.05 x 2^k (k = 0 .. 7); ``--sgd-only`` runs that part alone.
2. Pre-selection: candidates (cosine, linear, WSD with 10% and 30% cooldown, and the schedule
   solved under the power-law fit) times warm-ups (2% and 10%), all at peak 0.016, ranked by
   each fitted model with ``optsched.ranking.rank`` (the code of ``optsched rank``) and by real
   runs (several seeds, the same data order per seed). Top-1 hit: the model's first is the
   runs' first; top-2 hit: the runs' first is among the model's first two; Spearman correlation
   of the two orders. Per seed and on the mean over seeds.

    python benchmarks/preselect_char_lm.py [--seeds 2]      # all three parts, ~45 min on 2 cores
    python benchmarks/preselect_char_lm.py --part sgd       # one part: adamw, sgd or preselect

Each part writes its own table: results/preselect_{adamw,sgd,ranking}_char_lm.txt.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optsched as o
from optsched.ranking import rank

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import char_lm  # noqa: E402
from end_to_end_char_lm import EVALS, PEAK, pilot_runs, warmup  # noqa: E402

LADDER = 0.008 * 2.0 ** np.arange(8)
DIVERGED = math.log(256)
SGD_PILOT = 0.1
HEAD = [
    "| family | predicted largest stable peak | peaks run (final val loss) | "
    "precision | recall | F1 |",
    "|---|---|---|---|---|---|",
]


def shape(name: str, T: int) -> np.ndarray:
    fam, *rest = name.split()
    kw = {"cooldown": float(rest[0].rstrip("%")) / 100} if rest else {}
    return np.asarray(o.to_optax(o.family(fam, 1.0, T, **kw))(np.arange(T)))


def spearman(x, y) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def sgd_ladder(cfg, train, val, t0) -> list[str]:
    """The divergence check with plain SGD, whose runs do blow up: pilots (constant and a 10%
    cooldown at SGD_PILOT, 2% warm-up) trained here, the power-law model fitted to them, and a
    ladder of cosine runs at SGD_PILOT x 2^k (k = -1 .. 6)."""
    T = cfg["steps"]
    run = char_lm.make_trainer(
        cfg, train, val, evals=EVALS, optimiser=lambda lr: optax.sgd(lambda c: lr[c])
    )
    steps = np.arange(1, EVALS + 1) * (T // EVALS)
    keep = steps >= 100
    cooldown = shape("wsd 10%", T)
    pilots = []
    for name, lr in (("constant", warmup(T)), ("cooldown", warmup(T) * cooldown)):
        vals = np.asarray(run(jax.random.PRNGKey(0), jnp.asarray(SGD_PILOT * lr, char_lm.F32))[0])
        sched = o.Schedule(np.arange(T), SGD_PILOT * lr, horizon=T)
        pilots.append(o.PilotRun(sched, steps[keep], vals[keep], name=name))
    model = o.fit(pilots)
    lr = warmup(T) * shape("cosine", T)
    edge, err = model.max_stable_peak(o.Schedule(np.arange(T), lr, horizon=T))
    print(f"SGD pilots fitted ({time.perf_counter() - t0:.0f} s): edge {edge:.4g}", flush=True)
    truth, guess, cells = [], [], []
    for peak in SGD_PILOT * 2.0 ** np.arange(-1, 7):
        loss = float(
            np.asarray(run(jax.random.PRNGKey(0), jnp.asarray(peak * lr, char_lm.F32))[0])[-1]
        )
        truth.append(not (math.isfinite(loss) and loss <= DIVERGED))
        guess.append(bool(peak > edge))
        cells.append(f"{peak:g} ({loss:.3g}{'*' if truth[-1] else ''})")
        print(
            f"  sgd cosine peak {peak:g}: {loss:.4g} ({time.perf_counter() - t0:.0f} s)", flush=True
        )
    return [
        f"| cosine, SGD (pilots at {SGD_PILOT:g}) | {edge:.4g} +- {err:.2g} | "
        f"{', '.join(cells)} | {_prf(truth, guess)} |"
    ]


def adamw_ladder(models, run, T) -> list[str]:
    """The AdamW divergence ladder: cosine and constant at LADDER, seed 0."""
    lines = [*HEAD]
    truth, guess = [], []
    for fam in ("cosine", "constant"):
        lr = warmup(T) * shape(fam, T)
        edge, err = models["plrf"].max_stable_peak(o.Schedule(np.arange(T), lr, horizon=T))
        cells, t_f, g_f = [], [], []
        for peak in LADDER:
            loss = run(peak * lr, 0)
            t_f.append(not (math.isfinite(loss) and loss <= DIVERGED))
            g_f.append(bool(peak > edge))
            cells.append(f"{peak:g} ({loss:.3g}{'*' if t_f[-1] else ''})")
            print(f"  {fam} peak {peak:g}: {loss:.4g}", flush=True)
        truth += t_f
        guess += g_f
        lines.append(f"| {fam} | {edge:.4g} +- {err:.2g} | {', '.join(cells)} | {_prf(t_f, g_f)} |")
    return [*lines, f"| both | | | {_prf(truth, guess)} |", "", "(* diverged)"]


def preselection(models, run, T, seeds) -> list[str]:
    """Candidates ranked by each fitted model (``optsched.ranking.rank``) against real runs."""
    solved = o.solve(models["plrf"], T, PEAK).schedule
    bases = {name: shape(name, T) for name in ("cosine", "linear", "wsd 10%", "wsd 30%")}
    bases["solved (plrf)"] = np.asarray(solved.per_step(1.0)[0]) / PEAK
    tables = {
        f"{name}, warm-up {w:g}%": PEAK * warmup(T, w / 100) * base
        for w in (2, 10)
        for name, base in bases.items()
    }
    names = list(tables)
    real = np.empty((seeds, len(names)))
    for s in range(seeds):
        for j, n in enumerate(names):
            real[s, j] = run(tables[n], s)
            print(f"  seed {s} {n}: {real[s, j]:.4f}", flush=True)
    candidates = [(n, o.Schedule(np.arange(T), tables[n], horizon=T)) for n in names]
    lines = [
        f"Real final validation loss ({seeds} seeds):",
        "",
        "| candidate | " + " | ".join(f"seed {s}" for s in range(seeds)) + " | mean |",
        "|---|" + "---|" * (seeds + 1),
    ]
    for j, n in enumerate(names):
        lines.append(
            f"| {n} | "
            + " | ".join(f"{real[s, j]:.4f}" for s in range(seeds))
            + f" | {real[:, j].mean():.4f} |"
        )
    lines += [
        "",
        "| model | its first choice | top-1 hit (seeds; mean) | top-2 hit (seeds; mean) | "
        "Spearman (mean) |",
        "|---|---|---|---|---|",
    ]
    for label, model in models.items():
        order = [r["candidate"] for r in rank(model, candidates)["ranking"]]
        predicted = np.array([order.index(n) for n in names])
        hits1, hits2 = [], []
        for finals in [*real, real.mean(axis=0)]:
            best = names[int(np.argmin(finals))]
            hits1.append(order[0] == best)
            hits2.append(best in order[:2])
        rho = spearman(predicted, real.mean(axis=0))
        lines.append(
            f"| {label} | {order[0]} | {np.mean(hits1[:-1]):.2f}; {int(hits1[-1])} | "
            f"{np.mean(hits2[:-1]):.2f}; {int(hits2[-1])} | {rho:+.2f} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--part", choices=("all", "adamw", "sgd", "preselect"), default="all")
    args = parser.parse_args()
    cfg = dict(char_lm.SIZES["small"])
    T = cfg["steps"]
    out = pathlib.Path(__file__).parent / "results"
    train, val = char_lm.corpus()
    trainer = char_lm.make_trainer(cfg, train, val, evals=EVALS)

    def run(table, seed) -> float:
        vals, _ = trainer(jax.random.PRNGKey(seed), jnp.asarray(table, dtype=char_lm.F32))
        return float(np.asarray(vals)[-1])

    parts = ("adamw", "sgd", "preselect") if args.part == "all" else (args.part,)
    models = {}
    if {"adamw", "preselect"} & set(parts):
        pilots = pilot_runs(T)
        models = {
            "plrf": o.fit(pilots),
            "mpl": o.fit_multi_power_law(pilots),
            "convex": o.fit_convex_bound(pilots),
        }
    for part in parts:
        t0 = time.perf_counter()
        if part == "adamw":
            title, file = f"divergence ladder, AdamW, T = {T}", "preselect_adamw_char_lm.txt"
            body = adamw_ladder(models, run, T)
        elif part == "sgd":
            title, file = f"divergence ladder, SGD, T = {T}", "preselect_sgd_char_lm.txt"
            body = [*HEAD, *sgd_ladder(cfg, train, val, t0), "", "(* diverged)"]
        else:
            title, file = f"pre-selection, AdamW, T = {T}", "preselect_ranking_char_lm.txt"
            body = preselection(models, run, T, args.seeds)
        minutes = (time.perf_counter() - t0) / 60
        text = "\n".join(
            [
                f"# preselect_char_lm.py --part {part}: char_lm small, {title}",
                f"# {minutes:.1f} min",
                "",
                *body,
            ]
        )
        print(text, flush=True)
        (out / file).write_text(text + "\n")
    return 0


def _prf(truth, guess) -> str:
    t, g = np.asarray(truth), np.asarray(guess)
    tp, fp, fn = int(np.sum(t & g)), int(np.sum(~t & g)), int(np.sum(t & ~g))
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * p * r / (p + r) if p + r and not math.isnan(p + r) else float("nan")
    return f"{p:.2f} | {r:.2f} | {f1:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
