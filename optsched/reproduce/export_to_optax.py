r"""Solve, export to optax, train random-feature regression on sampled data, compare.

The loop is an ordinary optax training loop (``optax.sgd``, ``jax.grad`` of a mean-squared error
on fresh Gaussian minibatches); the only link to optsched is the schedule, passed as
``optsched.to_optax(schedule)``. Data: ``x ~ N(0, diag(k^-b))`` over ``M`` teacher modes,
``y = <w*, x> + sigma eps`` with :math:`\lambda_k (w^*_k)^2 = k^{-a}`; the student is linear in
the first ``N`` features from ``w = 0``. The excess test loss is exact for Gaussian data,
:math:`\sum_k \lambda_k (w_k - w^*_k)^2` (plus the unlearnable tail). All schedules see the same
minibatches (common random numbers), so their *differences* are measured far more precisely
than their levels.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..evaluate import loss_curve
from ..export import to_optax
from ..model.problem import PowerLawProblem
from ..solver.solve import solve
from . import plotting
from ._common import Check, Result

PROBLEM = PowerLawProblem(a=2.5, b=1.2, sigma=0.1, batch=4, features=100, teacher_modes=200)
LR_MAX = 2.0
QUICK: dict[str, Any] = dict(horizon=300, runs=256)
FULL: dict[str, Any] = dict(horizon=1000, runs=2048)


def train(problem: PowerLawProblem, lr_schedule, horizon: int, runs: int, seed: int = 0):
    """Excess test loss after each step of ``runs`` independent optax-SGD runs, ``(R, T+1)``.

    ``lr_schedule`` is anything ``optax.sgd`` accepts (an ``optax.Schedule`` or a float).
    """
    N, M = int(problem.features), int(problem.teacher_modes)
    a, b, sigma, m = float(problem.a), float(problem.b), float(problem.sigma), int(problem.batch)
    k = jnp.arange(1, M + 1, dtype=float)
    lam = k ** (-b)
    w_star = k ** (-(a - b) / 2)
    tail = jnp.sum(lam[N:] * w_star[N:] ** 2)
    optimizer = optax.sgd(learning_rate=lr_schedule)

    def test_loss(w):
        return jnp.sum(lam[:N] * (w - w_star[:N]) ** 2) + tail

    def train_loss(w, x, y):
        return 0.5 * jnp.mean((x[:, :N] @ w - y) ** 2)

    def one_run(key):
        def step(carry, key):
            w, state = carry
            kx, ke = jax.random.split(key)
            x = jax.random.normal(kx, (m, M)) * jnp.sqrt(lam)
            y = x @ w_star + sigma * jax.random.normal(ke, (m,))
            updates, state = optimizer.update(jax.grad(train_loss)(w, x, y), state, w)
            w = optax.apply_updates(w, updates)
            return (w, state), test_loss(w)

        w0 = jnp.zeros(N)
        _, losses = jax.lax.scan(step, (w0, optimizer.init(w0)), jax.random.split(key, horizon))
        return jnp.concatenate([test_loss(w0)[None], losses])

    keys = jax.random.split(jax.random.PRNGKey(seed), runs)
    return np.asarray(jax.jit(jax.vmap(one_run))(keys))


def paired_ratio(x, y) -> tuple[float, float]:
    """``mean(x) / mean(y)`` and its standard error for paired samples (delta method)."""
    mx, my = np.mean(x), np.mean(y)
    cov = np.cov(x, y, ddof=1)
    var = (cov[0, 0] / mx**2 + cov[1, 1] / my**2 - 2 * cov[0, 1] / (mx * my)) * (mx / my) ** 2
    return float(mx / my), float(np.sqrt(max(var, 0.0) / len(x)))


def compare(problem, schedules: dict, horizon: int, runs: int, seed: int = 0) -> dict:
    """Train every ``{name: Schedule}`` through :func:`optsched.to_optax`; per schedule the
    measured mean and standard error per step, the exact recursion's prediction, the largest
    ``|z|`` over steps, and the paired ratio of its final loss to the first schedule's."""
    out, ref = {}, None
    for name, sched in schedules.items():
        losses = train(problem, to_optax(sched), horizon, runs, seed)
        mean, err = losses.mean(0), losses.std(0, ddof=1) / np.sqrt(runs)
        predicted = np.asarray(loss_curve(problem, sched, method="scan").loss)
        ref = losses[:, -1] if ref is None else ref
        out[name] = {
            "mean": mean,
            "stderr": err,
            "predicted": predicted,
            "max_abs_z": float(np.max(np.abs(mean[1:] - predicted[1:]) / err[1:])),
            "ratio": paired_ratio(losses[:, -1], ref),
        }
    return out


def run(quick: bool = False, progress=None) -> Result:
    """Solve the docs/model.md easy problem at ``N = 100`` (a 200-mode teacher), export the optimum
    and the tuned cosine and WSD baselines to optax, and train each ``runs`` times.

    Checks: measured and predicted losses agree at every step (largest ``|z|`` below 4.5 over
    ``3 x T`` comparisons); the optimum's measured final loss is below cosine's and WSD's
    (paired ratio minus 2 standard errors above 1).
    """
    say = progress or (lambda msg: None)
    cfg = QUICK if quick else FULL
    T, R = cfg["horizon"], cfg["runs"]
    say(f"solving T = {T}")
    sol = solve(PROBLEM, T, LR_MAX)
    schedules = {
        "optsched": sol.schedule,
        "cosine": sol.baselines["cosine"].schedule,
        "wsd": sol.baselines["wsd"].schedule,
    }
    say(f"training {len(schedules)} x {R} runs")
    runs = compare(PROBLEM, schedules, T, R)
    where = f"N = 100, T = {T}, {R} runs per schedule"
    checks = [
        Check(
            "largest |z|, measured vs predicted loss (all steps)",
            0.0,
            max(r["max_abs_z"] for r in runs.values()),
            4.5,
            where,
        )
    ]
    for name in ("cosine", "wsd"):
        ratio, err = runs[name]["ratio"]
        checks.append(
            Check(
                f"measured final loss, {name} / optsched, minus 2 s.e.",
                1.0,
                ratio - 2 * err,
                0.0,
                where,
                relation="above",
            )
        )
    numbers = {
        "problem": PROBLEM.to_dict(),
        "lr_max": LR_MAX,
        "horizon": T,
        "runs": R,
        **{
            name: {
                "predicted_final": float(r["predicted"][-1]),
                "measured_final": float(r["mean"][-1]),
                "measured_stderr": float(r["stderr"][-1]),
                "max_abs_z": r["max_abs_z"],
                "ratio_to_optsched": r["ratio"],
            }
            for name, r in runs.items()
        },
    }
    fig = plotting.plot_measured_vs_predicted(runs, schedules)
    return Result("export_to_optax", numbers, checks, {"export_to_optax": fig})
