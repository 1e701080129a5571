"""Pre-train a small byte-level transformer on Python's own source code with optsched's schedule.

The corpus is the standard library's ``.py`` files, which every machine with Python has: sorted by
path, the first 90% (by file) for training and the rest for validation. The model is a pre-LN
decoder written with equinox; the optimiser is optax AdamW.

Four learning-rate shapes are compared at equal steps, each at its own tuned peak on the same
small grid, with several seeds:

* ``optsched``: the optimal schedule of the model problem, solved at this horizon and exported
  with ``optsched.to_optax(solution, peak_lr=peak)``. Which problem: the source paper reports that
  transformers trained on language modelling behave as in the *easy* phase, so the rule used here
  is the easy-phase reference problem of docs/model.md (a = 2.5, b = 1.2, N = infinity) solved at
  the
  run's horizon. Only the *shape* transfers (AdamW is not SGD); the peak is tuned like the others.
  Fitting ``(a, b)`` to pilot runs is the job of ``optsched.loss_models.fitted`` (not used here).
* ``cosine`` to zero, ``linear`` to zero, and ``wsd`` (constant, then a linear cooldown over the
  last 20%).

Every schedule, optsched's included, is multiplied by the same linear warmup over the first 2% of
steps, so the comparison is of shapes, not of warmups.

    python examples/char_lm.py                 # CPU default, < 30 min on 2 cores
    python examples/char_lm.py --size large    # a larger model and horizon, for a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sysconfig
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import optsched as o

SIZES = {
    # name: (width, layers, heads, context, batch, steps, peak grid)
    "small": dict(
        width=64,
        layers=2,
        heads=4,
        context=64,
        batch=32,
        steps=800,
        peaks=(4e-3, 8e-3, 1.6e-2, 3.2e-2),
    ),
    "large": dict(
        width=256,
        layers=6,
        heads=8,
        context=256,
        batch=64,
        steps=10000,
        peaks=(3e-4, 6e-4, 1.2e-3, 2.4e-3),
    ),
}
F32 = jnp.float32


# ------------------------------------------------------------------------------ data
def corpus(max_bytes: int = 8_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Bytes of the standard library's ``.py`` files: ``(train, validation)`` as uint8 arrays."""
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    if not files:
        raise SystemExit(f"no Python sources found under {root}")
    chunks, total = [], 0
    for p in files:
        data = p.read_bytes()
        chunks.append(data)
        total += len(data)
        if total >= max_bytes:
            break
    cut = int(0.9 * len(chunks))
    train = np.frombuffer(b"".join(chunks[:cut]), dtype=np.uint8)
    val = np.frombuffer(b"".join(chunks[cut:]), dtype=np.uint8)
    return train, val


# ------------------------------------------------------------------------------ model
class Block(eqx.Module):
    norm1: eqx.nn.LayerNorm
    attn: eqx.nn.MultiheadAttention
    norm2: eqx.nn.LayerNorm
    up: eqx.nn.Linear
    down: eqx.nn.Linear

    def __init__(self, width, heads, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.norm1 = eqx.nn.LayerNorm(width, dtype=F32)
        self.attn = eqx.nn.MultiheadAttention(heads, width, key=k1, dtype=F32)
        self.norm2 = eqx.nn.LayerNorm(width, dtype=F32)
        self.up = eqx.nn.Linear(width, 4 * width, key=k2, dtype=F32)
        self.down = eqx.nn.Linear(4 * width, width, key=k3, dtype=F32)

    def __call__(self, x, mask):
        h = jax.vmap(self.norm1)(x)
        x = x + self.attn(h, h, h, mask=mask)
        h = jax.vmap(self.norm2)(x)
        return x + jax.vmap(self.down)(jax.nn.gelu(jax.vmap(self.up)(h)))


class ByteTransformer(eqx.Module):
    """Pre-LN decoder over bytes: ``tokens (S,) -> logits (S, 256)``."""

    embed: eqx.nn.Embedding
    pos: jax.Array
    blocks: list
    norm: eqx.nn.LayerNorm
    head: eqx.nn.Linear

    def __init__(self, width, layers, heads, context, key):
        keys = jax.random.split(key, layers + 3)
        self.embed = eqx.nn.Embedding(256, width, key=keys[0], dtype=F32)
        self.pos = 0.02 * jax.random.normal(keys[1], (context, width), dtype=F32)
        self.blocks = [Block(width, heads, k) for k in keys[3:]]
        self.norm = eqx.nn.LayerNorm(width, dtype=F32)
        self.head = eqx.nn.Linear(width, 256, use_bias=False, key=keys[2], dtype=F32)

    def __call__(self, tokens):
        S = tokens.shape[0]
        x = jax.vmap(self.embed)(tokens) + self.pos[:S]
        mask = jnp.tril(jnp.ones((S, S), dtype=bool))
        for block in self.blocks:
            x = block(x, mask)
        return jax.vmap(self.head)(jax.vmap(self.norm)(x))


def sequence_loss(model, seq):
    """Mean next-byte cross-entropy (nats) of one sequence of ``context + 1`` bytes."""
    logits = model(seq[:-1])
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, seq[1:]))


# ------------------------------------------------------------------------------ training
def _sampler(cfg, train_tokens):
    """``batch_at(key)``: ``batch`` random windows of ``context + 1`` training bytes."""
    C, B = cfg["context"], cfg["batch"]
    tokens = jnp.asarray(train_tokens, dtype=jnp.int32)

    def batch_at(key):
        offsets = jax.random.randint(key, (B,), 0, tokens.shape[0] - C - 1)
        return jax.vmap(lambda s: jax.lax.dynamic_slice(tokens, (s,), (C + 1,)))(offsets)

    return batch_at


def _model(cfg, key):
    """A fresh model as ``(params, static, loss_fn)``; ``loss_fn(params, seqs)`` is the mean
    next-byte loss over a batch of sequences."""
    model = ByteTransformer(cfg["width"], cfg["layers"], cfg["heads"], cfg["context"], key)
    params, static = eqx.partition(model, eqx.is_array)

    def loss_fn(params, seqs):
        m = eqx.combine(params, static)
        return jnp.mean(jax.vmap(sequence_loss, in_axes=(None, 0))(m, seqs))

    return params, static, loss_fn


def curvature_pilot(cfg, train_tokens, optimiser, lr: float, steps: int, key, norm="linf"):
    r"""A short pilot at the constant rate ``lr`` that measures, at every step, the minibatch loss
    and the smoothness along the step on that same batch,
    :math:`\|g(x') - g(x)\|_* / \|x' - x\|` in the optimiser's ``norm``
    (``optsched.warmup.step_norms``; ``"linf"`` for Lion). Returns ``(losses, smoothness)``,
    each of shape ``(steps,)``."""
    init_key, data_key = jax.random.split(key)
    params, _, loss_fn = _model(cfg, init_key)
    batch_at = _sampler(cfg, train_tokens)
    optimizer = optax.with_extra_args_support(optimiser(jnp.full(steps, lr, F32)))

    def step(carry, key):
        params, state = carry
        seqs = batch_at(key)
        loss, grads = jax.value_and_grad(loss_fn)(params, seqs)
        updates, state = optimizer.update(grads, state, params, value=loss)
        new = optax.apply_updates(params, updates)
        change = jax.tree.map(lambda a, b: a - b, jax.grad(loss_fn)(new, seqs), grads)
        dual, primal = o.warmup.step_norms(change, updates, norm)
        return (new, state), (loss, dual / primal)

    init = (params, optimizer.init(params))
    _, (losses, kappas) = jax.jit(lambda c, k: jax.lax.scan(step, c, k))(
        init, jax.random.split(data_key, steps)
    )
    return np.asarray(losses), np.asarray(kappas)


def adamw(lr_table):
    """AdamW (weight decay 0.1) at the rate ``lr_table[t]`` on step ``t``."""
    return optax.adamw(lambda count: lr_table[count], weight_decay=0.1)


def make_trainer(
    cfg, train_tokens, val_tokens, val_seqs: int = 256, evals: int = 10, optimiser=adamw
):
    """A compiled ``run(key, lr_table) -> (val_losses, train_losses)`` for one configuration;
    the losses are measured ``evals`` times, evenly spaced, the last after the final step.

    ``optimiser(lr_table)`` builds the optax transformation of a run from its per-step table
    (traced, so one compilation serves every table); it receives the minibatch loss of each step
    as the extra argument ``value`` (a loss-driven rate may read it; others ignore it)."""
    C, T = cfg["context"], cfg["steps"]
    starts = np.linspace(0, len(val_tokens) - C - 2, val_seqs).astype(np.int64)
    val_batch = jnp.asarray(np.stack([val_tokens[s : s + C + 1] for s in starts]), dtype=jnp.int32)
    chunk = T // evals
    batch_at = _sampler(cfg, train_tokens)

    def val_loss(model):
        return jnp.mean(jax.vmap(sequence_loss, in_axes=(None, 0))(model, val_batch))

    @eqx.filter_jit
    def run(key, lr_table):
        init_key, data_key = jax.random.split(key)
        params, static, loss_fn = _model(cfg, init_key)
        optimizer = optax.with_extra_args_support(optimiser(lr_table))
        state = optimizer.init(params)

        def step(carry, key):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, batch_at(key))
            updates, state = optimizer.update(grads, state, params, value=loss)
            return (optax.apply_updates(params, updates), state), loss

        def segment(carry, keys):
            carry, losses = jax.lax.scan(step, carry, keys)
            return carry, (val_loss(eqx.combine(carry[0], static)), jnp.mean(losses))

        keys = jax.random.split(data_key, evals * chunk).reshape(evals, chunk, 2)
        _, (vals, trains) = jax.lax.scan(segment, (params, state), keys)
        return vals, trains

    return run


def shapes(steps: int) -> dict[str, np.ndarray]:
    """Per-step learning rate of each schedule with peak 1, warmup included, ``(steps,)``."""
    problem = o.PowerLawProblem(a=2.5, b=1.2, sigma=0.1, batch=4)  # N = infinity
    solution = o.solve(problem, steps, 2.0)
    t = jnp.arange(steps)
    out = {"optsched": np.asarray(o.to_optax(solution, peak_lr=1.0)(t))}
    for name, kwargs in {"cosine": {}, "linear": {}, "wsd": {"cooldown": 0.2}}.items():
        out[name] = np.asarray(o.to_optax(o.family(name, 1.0, steps, **kwargs))(t))
    warmup = np.minimum(1.0, (np.arange(steps) + 1) / max(1, round(0.02 * steps)))
    return {k: v * warmup for k, v in out.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(SIZES), default="small")
    parser.add_argument("--seeds", type=int, default=3, help="seeds at the tuned peak")
    parser.add_argument("--steps", type=int, default=None, help="override the size's horizon")
    parser.add_argument(
        "--peaks",
        type=float,
        nargs="+",
        default=None,
        help="override the size's peak learning-rate grid",
    )
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    cfg = dict(SIZES[args.size])
    if args.steps is not None:
        cfg["steps"] = args.steps
    if args.peaks is not None:
        cfg["peaks"] = tuple(args.peaks)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    train, val = corpus()
    run = make_trainer(cfg, train, val)
    lr_shapes = shapes(cfg["steps"])
    print(
        f"corpus: {len(train):,} train / {len(val):,} validation bytes; "
        f"{args.size}: {json.dumps({k: v for k, v in cfg.items() if k != 'peaks'})}",
        flush=True,
    )

    # 1. tune each schedule's peak on the grid (seed 0)
    tuning = {}
    for name, shape in lr_shapes.items():
        for peak in cfg["peaks"]:
            t0 = time.perf_counter()
            vals, _ = run(jax.random.PRNGKey(0), jnp.asarray(peak * shape, dtype=F32))
            tuning[(name, peak)] = float(vals[-1])
            print(
                f"  {name:<9} peak {peak:<7g} val {float(vals[-1]):.4f} "
                f"({time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
    best = {name: min(cfg["peaks"], key=lambda p, n=name: tuning[(n, p)]) for name in lr_shapes}

    # 2. at each tuned peak, more seeds
    finals, curves = {}, {}
    for name, shape in lr_shapes.items():
        runs = [tuning[(name, best[name])]]
        for seed in range(1, args.seeds):
            vals, _ = run(jax.random.PRNGKey(seed), jnp.asarray(best[name] * shape, dtype=F32))
            runs.append(float(vals[-1]))
            if seed == 1:
                curves[name] = np.asarray(vals)
        finals[name] = np.array(runs)
    elapsed = time.perf_counter() - t_start
    _report(args, cfg, tuning, best, finals, elapsed, out)
    _plot(lr_shapes, best, curves, cfg, out / f"char_lm_{args.size}.png")
    return 0


def _report(args, cfg, tuning, best, finals, elapsed, out) -> None:
    grid = cfg["peaks"]
    lines = [
        f"# examples/char_lm.py --size {args.size} --seeds {args.seeds}  ({elapsed / 60:.1f} min)",
        f"# byte-level transformer on the Python standard library; AdamW; {cfg['steps']} steps; "
        "validation loss in nats/byte",
        "",
        "Peak tuning (seed 0), validation loss at the end:",
        "",
        "| schedule | " + " | ".join(f"peak {p:g}" for p in grid) + " |",
        "|---|" + "---|" * len(grid),
    ]
    for name in finals:
        lines.append(f"| {name} | " + " | ".join(f"{tuning[(name, p)]:.4f}" for p in grid) + " |")
    lines += [
        "",
        f"At the tuned peak, {args.seeds} seeds (0 .. {args.seeds - 1}):",
        "",
        "| schedule | tuned peak | mean val loss | std | per seed | vs optsched |",
        "|---|---|---|---|---|---|",
    ]
    ref = finals["optsched"]
    for name, v in finals.items():
        diff = v - ref  # same seeds: paired
        lines.append(
            f"| {name} | {best[name]:g} | {v.mean():.4f} | {v.std(ddof=1):.4f} | "
            + ", ".join(f"{x:.4f}" for x in v)
            + " | "
            + (
                "-"
                if name == "optsched"
                else f"{diff.mean():+.4f} +- {diff.std(ddof=1) / math.sqrt(len(v)):.4f}"
            )
            + " |"
        )
    text = "\n".join(lines)
    print(text)
    (out / f"char_lm_{args.size}.txt").write_text(text + "\n")


def _plot(lr_shapes, best, curves, cfg, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    T = cfg["steps"]
    at = np.arange(1, 11) * (T // 10)
    for i, name in enumerate(lr_shapes):
        ax1.plot(best[name] * lr_shapes[name], color=f"C{i}", label=f"{name} (peak {best[name]:g})")
        if name in curves:
            ax2.plot(at, curves[name], "o-", color=f"C{i}", label=name)
    ax1.set(xlabel="step", ylabel="AdamW learning rate", title="schedules at their tuned peaks")
    ax1.legend()
    ax2.set(xlabel="step", ylabel="validation loss (nats/byte)", title="validation loss, seed 1")
    ax2.legend()
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    raise SystemExit(main())
