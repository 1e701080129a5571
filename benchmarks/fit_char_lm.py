"""Fit loss models to two real pilot runs and predict other schedules' final loss.

The byte-level language model of ``examples/char_lm.py`` (small size: 2 layers, width 64,
AdamW, 800 steps, peak learning rate 0.016 with a 2% warmup, the same data order for every run)
is trained with a constant rate and with a 10% linear cooldown (the pilot runs, validation loss
measured 40 times). Three loss models are fitted to them: the power-law random-feature model
(``optsched.loss_models.fitted``), the multi-power law (Luo et al. 2025) and the convex
last-iterate bound.
Each then predicts the final validation loss of cosine, WSD (20% cooldown), linear-to-zero and
optsched's schedule, which are trained too (two seeds, to show the run-to-run spread the errors
compare with).

    python benchmarks/fit_char_lm.py          # about 5 minutes on 2 CPU cores
    python benchmarks/fit_char_lm.py --reuse  # refit the curves saved by the last run
"""

from __future__ import annotations

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

PEAK, EVALS = 0.016, 40
FIT_FROM = 100
"""Pilot points before this step are left out of the fits: the first 12% of a transformer's
curve (learning byte statistics, the warmup) is a transient that none of the models describes."""
PILOTS = ("constant", "cooldown")
HELD_OUT = ("cosine", "wsd", "linear", "optsched")


def main() -> int:
    t_start = time.perf_counter()
    cfg = dict(char_lm.SIZES["small"])
    T = cfg["steps"]
    shapes = char_lm.shapes(T)
    warmup = np.minimum(1.0, (np.arange(T) + 1) / max(1, round(0.02 * T)))
    shapes["constant"] = warmup
    # the pilot cooldown: constant, then a linear cooldown over the last 10% (WSD, held out,
    # cools down over 20%)
    cooldown = np.asarray(o.to_optax(o.family("wsd", 1.0, T, cooldown=0.1))(np.arange(T)))
    shapes["cooldown"] = warmup * cooldown
    steps = np.arange(1, EVALS + 1) * (T // EVALS)
    out = pathlib.Path(__file__).parent / "results"
    saved = out / "fit_char_lm_curves.json"
    if "--reuse" in sys.argv[1:] and saved.exists():
        data = json.loads(saved.read_text())
        curves = {k: np.array(v) for k, v in data["curves"].items()}
        finals = {k: np.array(v) for k, v in data["finals"].items()}
    else:
        curves, finals = train_all(cfg, shapes, steps, t_start)
        saved.write_text(
            json.dumps(
                {
                    "curves": {k: v.tolist() for k, v in curves.items()},
                    "finals": {k: v.tolist() for k, v in finals.items()},
                }
            )
        )

    def schedule(name):
        return o.Schedule(np.arange(T), PEAK * shapes[name], horizon=T)

    keep = steps >= FIT_FROM
    pilots = [o.PilotRun(schedule(n), steps[keep], curves[n][keep]) for n in PILOTS]
    models = {}
    for label, fitter in (
        ("power-law RF (optsched.loss_models.fitted)", o.fit),
        ("multi-power law", o.fit_multi_power_law),
        ("convex bound", o.fit_convex_bound),
    ):
        t0 = time.perf_counter()
        models[label] = fitter(pilots)
        print(f"fitted {label} in {time.perf_counter() - t0:.0f} s", flush=True)

    lines = [
        f"# benchmarks/fit_char_lm.py: char_lm small, T = {T}, peak {PEAK}, fit on "
        f"{' + '.join(PILOTS)} ({int(keep.sum())} validation points each, steps "
        f"{FIT_FROM} .. {T}); "
        f"{(time.perf_counter() - t_start) / 60:.1f} min",
        "",
        "| schedule | measured final val loss | "
        + " | ".join(f"{m} (error)" for m in models)
        + " |",
        "|---|---|" + "---|" * len(models),
    ]
    errors = {m: [] for m in models}
    for name in PILOTS + HELD_OUT:
        f = finals[name]
        spread = f" +- {abs(f[1] - f[0]) / 2:.4f} (2 seeds)" if f.size > 1 else " (fitted)"
        cells = []
        for label, model in models.items():
            pred = float(model.predict(schedule(name), [T])[0])
            err = pred / f.mean() - 1
            cells.append(f"{pred:.4f} ({100 * err:+.2f}%)")
            if name in HELD_OUT:
                errors[label].append(abs(err))
        lines.append(f"| {name} | {f.mean():.4f}{spread} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "mean |error| on the held-out schedules: "
        + ", ".join(f"{m} {100 * np.mean(e):.2f}%" for m, e in errors.items()),
    ]
    plrf = models["power-law RF (optsched.loss_models.fitted)"]
    v, e = plrf.values(), plrf.stderr
    lines.append("power-law RF fit: " + ", ".join(f"{k} = {v[k]:.4g} +- {e[k]:.2g}" for k in v))
    text = "\n".join(lines)
    print(text)
    (out / "fit_char_lm.txt").write_text(text + "\n")
    _plot(curves, steps, models, schedule, out / "fit_char_lm.png")
    return 0


def train_all(cfg, shapes, steps, t_start):
    """Validation curves (seed 0) and final losses (two seeds for the held-out schedules)."""
    train, val = char_lm.corpus()
    run = char_lm.make_trainer(cfg, train, val, evals=EVALS)
    curves, finals = {}, {}
    for name in PILOTS + HELD_OUT:
        lr = PEAK * shapes[name]
        seeds = (0,) if name in PILOTS else (0, 1)
        runs = [
            np.asarray(run(jax.random.PRNGKey(s), jnp.asarray(lr, dtype=char_lm.F32))[0])
            for s in seeds
        ]
        curves[name] = runs[0]
        finals[name] = np.array([r[-1] for r in runs])
        print(
            f"{name:<9} final val loss {finals[name].mean():.4f} "
            f"({time.perf_counter() - t_start:.0f} s)",
            flush=True,
        )
    return curves, finals


def _plot(curves, steps, models, schedule, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(models), figsize=(5 * len(models), 3.8), constrained_layout=True, sharey=True
    )
    for ax, (label, model) in zip(axes, models.items(), strict=True):
        for i, (name, curve) in enumerate(curves.items()):
            color = f"C{i}"
            ax.plot(
                steps,
                curve,
                "o",
                ms=3,
                color=color,
                label=f"{name} ({'fit' if name in PILOTS else 'held out'})",
            )
            t = np.arange(1, schedule(name).horizon + 1)
            ax.plot(t, model.predict(schedule(name), t), "-", lw=1, color=color)
        ax.set(xlabel="step", title=f"{label}: lines predict", ylim=(None, curves["constant"][3]))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation loss (nats/byte)")
    axes[0].legend(frameon=False, fontsize=7)
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    raise SystemExit(main())
