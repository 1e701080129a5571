"""Loss-driven adaptive warm-up against fixed warm-up lengths, with Lion, on a real network.

The byte-level language model of ``examples/char_lm.py`` (small: 2 layers, width 64, 800 steps)
trained with Lion (``optax.lion``, its default betas and weight decay) at one peak rate and one
decay for every run: a cosine to zero over the whole run, multiplied by the warm-up.

* fixed: a linear warm-up over 0, 1, 5, 10 or 20% of the run, ``min(1, (t + 1) / t_w) cos(t)``;
* adaptive: ``optsched.scale_by_adaptive_warmup(..., relative=True)`` with the same cosine as
  ``decay``: the rate is ``peak rho(D_t) / rho(D*)`` (times the cosine), ``rho(D) = D / L(D)``,
  until the gap ``D_t`` reaches ``D*``, the gap where ``rho`` peaks; then the peak times the
  cosine. ``L(D) = K0 + K1 D + Kr D^2`` and the floor ``f*`` come from one short pilot (seed 100,
  not a training seed): Lion at a tenth of the peak for a quarter of the run, measuring at every
  step the minibatch loss and the smoothness along the step on that batch,
  ``|g(x') - g(x)|_1 / |x' - x|_inf`` (Lion's sign step has l-infinity norm equal to its rate,
  so ``D / L(D)`` comes out in Lion's own units). ``f*`` is fitted to the binned losses (medians
  of 10 steps); ``K0`` is the least binned smoothness and ``Kr`` is fitted to the steps up to
  that bin (the assumption's regime: later the smoothness rises again as the loss falls,
  progressive sharpening, which the assumption does not describe).

    python benchmarks/warmup_char_lm.py [--seeds 3] [--peak 0.008]   # about 10 min, 2 CPU cores

Prints the table (mean final validation loss, spread over seeds, paired difference to the best
fixed length) and writes results/warmup_char_lm.txt.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optsched as o

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import char_lm  # noqa: E402

FRACTIONS = (0.0, 0.01, 0.05, 0.10, 0.20)
EVALS, BIN = 40, 10


def lion(lr_table):
    return optax.lion(lambda count: lr_table[count])


def adaptive(smoothness: o.Smoothness, peak: float):
    """Lion's direction and weight decay, then the loss-driven rate; the run's table is the
    decay (peak-normalised cosine)."""

    def build(decay_table):
        return optax.chain(
            optax.scale_by_lion(),
            optax.add_decayed_weights(1e-3),
            o.scale_by_adaptive_warmup(
                smoothness,
                min_lr=1e-3 * peak,
                max_lr=peak,
                decay=lambda count: decay_table[count],
                relative=True,
            ),
        )

    return build


def pilot(cfg, train, peak: float) -> tuple[o.Smoothness, dict]:
    steps = cfg["steps"] // 4
    losses, smooth = char_lm.curvature_pilot(
        cfg, train, lion, 0.1 * peak, steps, jax.random.PRNGKey(100)
    )
    bins = steps // BIN
    loss_b = np.median(losses[: bins * BIN].reshape(bins, BIN), axis=1)
    smooth_b = np.median(smooth[: bins * BIN].reshape(bins, BIN), axis=1)
    t_b = (np.arange(bins) + 0.5) * BIN
    loss_star = o.estimate_loss_star(t_b, loss_b)
    # the assumption (smoothness falling with the gap) holds until the binned smoothness is
    # least; after that it rises again as the loss falls (progressive sharpening)
    # least; after that it rises again as the loss falls (progressive sharpening). K0 is that
    # least value (the floor of L(D)); Kr the least-squares fit of K0 + Kr D^2 to the window,
    # relative to each measurement
    window = (int(np.argmin(smooth_b)) + 1) * BIN
    keep = smooth[:window] > 0
    gap, meas = losses[:window][keep] - loss_star, smooth[:window][keep]
    K0 = float(smooth_b.min())
    x = gap**2 / meas
    Kr = max(float(np.sum(x * (1 - K0 / meas)) / np.sum(x * x)), 0.0)
    smoothness = o.Smoothness(K0, 0.0, Kr, 2.0, loss_star)
    info = {
        "pilot steps": steps,
        "window": window,
        "loss by bin": " ".join(f"{v:.2f}" for v in loss_b),
        "smoothness by bin": " ".join(f"{v:.3g}" for v in smooth_b),
    }
    return smoothness, info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--peak", type=float, default=0.008)
    args = parser.parse_args()
    t_start = time.perf_counter()
    cfg = dict(char_lm.SIZES["small"])
    T, peak = cfg["steps"], args.peak
    train, val = char_lm.corpus()
    cosine = np.asarray(o.to_optax(o.family("cosine", 1.0, T))(np.arange(T)))

    smoothness, info = pilot(cfg, train, peak)
    print(f"pilot ({time.perf_counter() - t_start:.0f} s): {info}", flush=True)
    print(f"fitted: {smoothness}; rate peaks at gap {smoothness.peak_gap:.3g}", flush=True)

    tables = {}
    for frac in FRACTIONS:
        width = max(1, round(frac * T))
        warm = np.minimum(1.0, (np.arange(T) + 1) / width) if frac else np.ones(T)
        tables[f"fixed {100 * frac:g}%"] = (lion, peak * warm * cosine)
    tables["adaptive"] = (adaptive(smoothness, peak), cosine)
    # the warm-up ends once the (averaged) loss falls below f* + D*
    threshold = smoothness.loss_star + smoothness.peak_gap
    finals, ends = {}, []
    for name, (optimiser, table) in tables.items():
        run = char_lm.make_trainer(cfg, train, val, evals=EVALS, optimiser=optimiser)
        table = jnp.asarray(table, dtype=char_lm.F32)
        runs = [run(jax.random.PRNGKey(s), table) for s in range(args.seeds)]
        finals[name] = np.array([float(np.asarray(vals)[-1]) for vals, _ in runs])
        if name == "adaptive":  # first logged segment whose mean training loss is below it
            for _, trains in runs:
                below = np.flatnonzero(np.asarray(trains) < threshold)
                ends.append(int((below[0] + 1) * (T // EVALS)) if below.size else None)
        print(
            f"{name:<12} final val loss {np.nanmean(finals[name]):.4f} "
            f"({time.perf_counter() - t_start:.0f} s)",
            flush=True,
        )
    fixed = [k for k in finals if k.startswith("fixed")]
    best = min(fixed, key=lambda k: np.nanmean(finals[k]))
    n = args.seeds
    lines = [
        f"# benchmarks/warmup_char_lm.py: char_lm small, Lion, T = {T}, peak {peak}, cosine decay, "
        f"{n} seeds; {(time.perf_counter() - t_start) / 60:.1f} min",
        f"# pilot: {info}",
        f"# fitted smoothness: K0 {smoothness.K0:.4g}, K1 {smoothness.K1:.4g}, "
        f"Kr {smoothness.Kr:.4g}, f* {smoothness.loss_star:.4g}; D* {smoothness.peak_gap:.4g}: "
        f"the warm-up ends below loss {threshold:.4g}, by step {ends} (per seed, to "
        f"{T // EVALS} steps; None: never)",
        "",
        "| warm-up | mean final val loss | +- s.e. over seeds | "
        f"minus best fixed ({best}, paired) |",
        "|---|---|---|---|",
    ]
    for name, f in finals.items():
        d = f - finals[best]
        se = f.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        dse = d.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        lines.append(f"| {name} | {f.mean():.4f} | {se:.4f} | {d.mean():+.4f} +- {dse:.4f} |")
    text = "\n".join(lines)
    print(text)
    out = pathlib.Path(__file__).parent / "results"
    (out / "warmup_char_lm.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
