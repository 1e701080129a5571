"""The ``optsched`` command: parses arguments, calls the library, prints. Nothing imports it."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

EXAMPLE = dict(a=2.5, b=1.2, sigma=0.1, batch=4.0, features="500", horizon=1000)
"""The built-in example: the easy-phase reference problem of MODEL.md."""


class UsageError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


def _problem_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problem (defaults: the built-in easy-phase example)")
    g.add_argument("--a", type=float, default=EXAMPLE["a"], help="target exponent, a > 1")
    g.add_argument("--b", type=float, default=EXAMPLE["b"], help="eigenvalue exponent, b > 1")
    g.add_argument("--sigma", type=float, default=EXAMPLE["sigma"], help="label-noise std")
    g.add_argument("--batch", type=float, default=EXAMPLE["batch"], help="batch size m")
    g.add_argument("--features", default=EXAMPLE["features"], help="student width N (int or inf)")
    g.add_argument("--teacher-modes", default=None, help="teacher width M >= N (int or inf)")


def _problem(args):
    from .problem import PowerLawProblem

    return PowerLawProblem(a=args.a, b=args.b, sigma=args.sigma, batch=args.batch,
                           features=args.features, teacher_modes=args.teacher_modes)


def cmd_curve(args) -> int:
    from .baselines import family
    from .evaluate import loss_curve

    problem = _problem(args)
    if args.horizon < 1:
        raise UsageError(f"horizon must be >= 1, got {args.horizon}")
    schedule = family(args.schedule, args.lr, args.horizon)
    t0 = time.perf_counter()
    traj = loss_curve(problem, schedule, method="scan")
    elapsed = time.perf_counter() - t0
    steps, loss = np.asarray(traj.steps), np.asarray(traj.loss)
    shown = np.unique(np.concatenate([[0], np.round(np.geomspace(1, args.horizon, 12)),
                                      [args.horizon]]).astype(int))
    if args.json:
        print(json.dumps({"horizon": args.horizon, "schedule": args.schedule, "lr": args.lr,
                          "problem": problem.to_dict(), "final_loss": float(loss[-1]),
                          "steps": shown.tolist(), "loss": loss[shown].tolist()}))
    else:
        print(f"problem  a={args.a:g} b={args.b:g} sigma={args.sigma:g} m={args.batch:g} "
              f"N={args.features}  ({problem.phase} phase)")
        print(f"schedule {args.schedule}, peak lr {args.lr:g}, horizon {args.horizon}")
        print(f"{'step':>10}  {'lr':>10}  {'excess loss':>12}")
        for t in shown:
            lr_t = float(schedule.lr_at(min(int(t), args.horizon - 1)))
            print(f"{t:>10d}  {lr_t:>10.4g}  {loss[t]:>12.5g}")
        print(f"final excess loss L_T = {loss[-1]:.6g}  (exact recursion, {elapsed:.2f} s)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .plotting import plot_loss_curves, plot_schedules

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        plot_schedules({args.schedule: schedule}, ax=ax1)
        plot_loss_curves({args.schedule: traj}, ax=ax2,
                         title=f"a={args.a:g}, b={args.b:g} ({problem.phase} phase)")
        fig.savefig(args.plot, dpi=120)
        if not args.json:
            print(f"plot written to {args.plot}")
    del steps
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .baselines import FAMILIES

    parser = argparse.ArgumentParser(
        prog="optsched",
        description="Optimal training schedules from a solvable model of SGD.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    curve = sub.add_parser("curve", help="expected loss curve of a standard schedule")
    _problem_args(curve)
    curve.add_argument("--horizon", type=int, default=EXAMPLE["horizon"], help="SGD steps T")
    curve.add_argument("--schedule", choices=FAMILIES, default="cosine")
    curve.add_argument("--lr", type=float, default=0.4, help="peak learning rate")
    curve.add_argument("--plot", default=None, help="write a PNG of schedule and loss")
    curve.add_argument("--json", action="store_true", help="print one JSON object")
    curve.set_defaults(func=cmd_curve)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError) as err:
        print(f"optsched {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
