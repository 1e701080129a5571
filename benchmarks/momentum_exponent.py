"""The hard-phase momentum question: does an optimal momentum schedule change the loss exponent?

The source paper's hard-phase setting (a = 1.3, b = 2.75, sigma = 0.7, batch 4), at infinite
width. For each horizon T the learning rate alone (eta <= 1) and the learning rate with momentum
(eta <= 1, momentum <= 0.99, each form) are solved by ``optsched.solve``; momentum runs in closed
form per block on long horizons (``optsched.dynamics.choice.momentum_method``). The loss
exponent is the slope of -log L_T against log T, between neighbouring horizons and fitted over
the largest ones, beside plain SGD's asymptotic (a-1)/b = 0.109 and the 1.5 (a-1)/b = 0.164 the
paper's momentum guide line shows.

    python benchmarks/momentum_exponent.py                      # T = 1e3 .. 1e6, about 40 min
    python benchmarks/momentum_exponent.py --horizons 1000 10000
    python benchmarks/momentum_exponent.py --beta-max 0.9999 --horizons 1000 10000 100000

Writes results/momentum_exponent.txt and docs/reproduce/momentum_exponent.png (with another
--beta-max: results/momentum_exponent_beta<value>.txt and no figure).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import time

import numpy as np

import optsched as o

PROBLEM = dict(a=1.3, b=2.75, sigma=0.7, batch=4, features=math.inf)
FORMS = ("heavy_ball", "ema")


def slopes(T, L) -> list[float]:
    """Local exponents ``-d log L / d log T`` between neighbouring horizons."""
    lt, ll = np.log(T), np.log(L)
    return list(-np.diff(ll) / np.diff(lt))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--horizons", type=int, nargs="+", default=[1000, 3000, 10_000, 30_000, 100_000, 1_000_000]
    )
    parser.add_argument("--beta-max", type=float, default=0.99, help="momentum cap (both forms)")
    args = parser.parse_args()
    problem = o.PowerLawProblem(**PROBLEM)
    a, b = PROBLEM["a"], PROBLEM["b"]
    root = pathlib.Path(__file__).resolve().parents[1]
    rows = {"sgd": [], **{f: [] for f in FORMS}}
    times = {k: [] for k in rows}
    for T in args.horizons:
        t0 = time.perf_counter()
        rows["sgd"].append(o.solve(problem, T, 1.0).final_loss)
        times["sgd"].append(time.perf_counter() - t0)
        for form in FORMS:
            t0 = time.perf_counter()
            sol = o.solve(
                problem,
                T,
                o.LearningRateMomentum(lr_max=1.0, beta_max=args.beta_max, form=form),
                throw=False,
            )
            rows[form].append(sol.final_loss)
            times[form].append(time.perf_counter() - t0)
        print(
            f"T = {T}: sgd {rows['sgd'][-1]:.6g} ({times['sgd'][-1]:.0f} s), "
            + ", ".join(f"{f} {rows[f][-1]:.6g} ({times[f][-1]:.0f} s)" for f in FORMS),
            flush=True,
        )
    T = np.asarray(args.horizons, dtype=float)
    lines = [
        "# benchmarks/momentum_exponent.py: hard phase a = 1.3, b = 2.75, sigma = 0.7, batch 4, "
        f"N = inf; eta <= 1, momentum <= {args.beta_max:g}",
        "",
        "| T | optimal SGD L_T | heavy ball L_T | ratio | EMA L_T | ratio | "
        "solve s (SGD / HB / EMA) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, t in enumerate(args.horizons):
        s, h, e = rows["sgd"][i], rows["heavy_ball"][i], rows["ema"][i]
        lines.append(
            f"| {t:.0e} | {s:.5g} | {h:.5g} | {h / s:.4f} | {e:.5g} | {e / s:.4f} | "
            f"{times['sgd'][i]:.0f} / {times['heavy_ball'][i]:.0f} / {times['ema'][i]:.0f} |"
        )
    lines += [
        "",
        "Local exponents -dlog L / dlog T between neighbouring horizons:",
        "",
        "| between | SGD | heavy ball | EMA |",
        "|---|---|---|---|",
    ]
    local = {k: slopes(T, np.asarray(v)) for k, v in rows.items()}
    for i in range(len(T) - 1):
        lines.append(
            f"| {T[i]:.0e} - {T[i + 1]:.0e} | {local['sgd'][i]:.4f} | "
            f"{local['heavy_ball'][i]:.4f} | {local['ema'][i]:.4f} |"
        )
    tail = T >= T[max(0, len(T) - 3)]
    fits = {
        k: -np.polyfit(np.log(T[tail]), np.log(np.asarray(v)[tail]), 1)[0] for k, v in rows.items()
    }
    lines += [
        "",
        f"Fitted over the largest three horizons: SGD {fits['sgd']:.4f}, heavy ball "
        f"{fits['heavy_ball']:.4f}, EMA {fits['ema']:.4f}; theory for SGD (a-1)/b = "
        f"{(a - 1) / b:.4f}; the paper's momentum guide 1.5 (a-1)/b = {1.5 * (a - 1) / b:.4f}.",
    ]
    text = "\n".join(lines)
    print(text)
    suffix = "" if args.beta_max == 0.99 else f"_beta{args.beta_max:g}"
    (root / "benchmarks" / "results" / f"momentum_exponent{suffix}.txt").write_text(text + "\n")
    if suffix:
        return 0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key, label, style in (
        ("sgd", "optimal SGD", "o-"),
        ("heavy_ball", "optimal heavy ball", "s-"),
        ("ema", "optimal EMA momentum", "^-"),
    ):
        ax.loglog(T, rows[key], style, label=label)
    for mult, ls in ((1.0, ":"), (1.5, "--")):
        ref = rows["sgd"][0] * (T / T[0]) ** (-mult * (a - 1) / b)
        ax.loglog(T, ref, "k" + ls, lw=0.8, label=f"T^-{mult:g}(a-1)/b")
    ax.set_xlabel("horizon T")
    ax.set_ylabel("final excess loss L_T")
    ax.set_title("hard phase (a = 1.3, b = 2.75), N = inf")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(root / "docs" / "reproduce" / "momentum_exponent.png", dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
