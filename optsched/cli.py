"""The ``optsched`` command: parses arguments, calls the library, prints. Nothing imports it."""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import time
import warnings

import numpy as np

EXAMPLE = dict(a=2.5, b=1.2, sigma=0.1, batch=4.0, features="500", horizon=1000)
"""The built-in example: the easy-phase reference problem of docs/model.md."""


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
    from .model.problem import PowerLawProblem

    return PowerLawProblem(
        a=args.a,
        b=args.b,
        sigma=args.sigma,
        batch=args.batch,
        features=args.features,
        teacher_modes=args.teacher_modes,
    )


def cmd_curve(args) -> int:
    from .evaluate import loss_curve
    from .solver.baselines import family

    problem = _problem(args)
    if args.horizon < 1:
        raise UsageError(f"horizon must be >= 1, got {args.horizon}")
    schedule = family(args.schedule, args.lr, args.horizon)
    plot = None if args.plot is None else _plot_path(args.plot)
    t0 = time.perf_counter()
    traj = loss_curve(problem, schedule, method="scan")
    elapsed = time.perf_counter() - t0
    loss = np.asarray(traj.loss)  # the scan reports every step 0 .. T
    shown = np.unique(
        np.concatenate([[0], np.round(np.geomspace(1, args.horizon, 12)), [args.horizon]]).astype(
            int
        )
    )
    if args.json:
        print(
            json.dumps(
                {
                    "horizon": args.horizon,
                    "schedule": args.schedule,
                    "lr": args.lr,
                    "problem": problem.to_dict(),
                    "final_loss": float(loss[-1]),
                    "steps": shown.tolist(),
                    "loss": loss[shown].tolist(),
                },
                allow_nan=False,
            )
        )
    else:
        print(
            f"problem  a={args.a:g} b={args.b:g} sigma={args.sigma:g} m={args.batch:g} "
            f"N={args.features}  ({problem.phase} phase)"
        )
        print(f"schedule {args.schedule}, peak lr {args.lr:g}, horizon {args.horizon}")
        print(f"{'step':>10}  {'lr':>10}  {'excess loss':>12}")
        for t in shown:
            lr_t = float(schedule.lr_at(min(int(t), args.horizon - 1)))
            print(f"{t:>10d}  {lr_t:>10.4g}  {loss[t]:>12.5g}")
        print(f"final excess loss L_T = {loss[-1]:.6g}  (exact recursion, {elapsed:.2f} s)")
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .reproduce.plotting import plot_loss_curves, plot_schedules

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
        plot_schedules({args.schedule: schedule}, ax=ax1)
        plot_loss_curves(
            {args.schedule: traj},
            ax=ax2,
            title=f"a={args.a:g}, b={args.b:g} ({problem.phase} phase)",
        )
        fig.savefig(plot, dpi=120)
        if not args.json:
            print(f"plot written to {plot}")
    return 0


PLOT_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def _plot_path(path) -> pathlib.Path:
    """``--plot`` as a file to write: ``.png`` added when it has no extension; a format that
    matplotlib does not write, or a folder that cannot be written, refused before the work."""
    target = pathlib.Path(path)
    if target.suffix == "":
        target = target.with_suffix(".png")
    elif target.suffix.lower().lstrip(".") not in PLOT_FORMATS:
        raise UsageError(
            f"--plot {path}: cannot write a {target.suffix} figure; use one of "
            + ", ".join(f".{f}" for f in PLOT_FORMATS)
        )
    _check_writable(target, [])
    return target


def _progress(quiet: bool):
    """A one-line progress display on a terminal (stderr); silent otherwise or with --quiet."""
    if quiet or not sys.stderr.isatty():
        return None
    start = time.perf_counter()

    def show(message: str) -> None:
        sys.stderr.write(f"\r\033[K[{time.perf_counter() - start:6.1f} s] {message}")
        sys.stderr.flush()

    return show


def cmd_solve(args) -> int:
    from .model.problem import PowerLawProblem
    from .solver.parameterisation import LearningRate, LearningRateBatch, LearningRateMomentum
    from .solver.solve import solve

    if args.batch_schedule != (args.sample_budget is not None):
        raise UsageError("--batch-schedule and --sample-budget D go together")
    if args.momentum and args.batch_schedule:
        raise UsageError("choose --momentum or --batch-schedule, not both")
    if args.horizon < 1:
        raise UsageError(f"horizon must be >= 1, got {args.horizon}")
    _check_writable(args.out, [])
    problem = _problem(args)
    show = _progress(args.quiet)
    if args.momentum:
        controls = LearningRateMomentum(lr_max=args.lr_max)
    elif args.batch_schedule:
        controls = LearningRateBatch(lr_max=args.lr_max, budget=args.sample_budget)
    else:
        controls = LearningRate(lr_max=args.lr_max)
    interpolation = "linear" if args.smooth else "previous"
    solution = solve(
        problem, args.horizon, controls, interpolation=interpolation, progress=show, throw=False
    )
    if show:
        sys.stderr.write("\r\033[K")
    _check_result(solution, args.out)
    solution.save(args.out)  # atomic; the folder was checked before the solve
    if not args.quiet:
        d = solution.stats
        solved = solution.model  # at the budget's mean batch for a batch schedule
        stable = solved.max_stable_lr() if isinstance(solved, PowerLawProblem) else math.nan
        print(
            f"{solution.phase} phase (a={args.a:g}, b={args.b:g}); horizon T={args.horizon}; "
            f"lr <= {solution.lr_max:.4g} (largest stable constant {stable:.4g})"
        )
        print(
            f"optimal final excess loss L_T = {solution.final_loss:.6g}  "
            f"({len(solution.schedule.steps)} knots, {d['time_s']:.1f} s)"
        )
        if args.momentum or args.batch_schedule:
            what = "momentum" if args.momentum else f"batch sizes (budget {args.sample_budget:g})"
            gain = d["lr_only_final_loss"] / solution.final_loss - 1
            print(
                f"  with {what}: {100 * gain:.2f}% better than the optimal learning rate "
                f"alone ({d['lr_only_final_loss']:.6g})"
            )
        for name, res in sorted(solution.baselines.items(), key=lambda kv: kv[1].final_loss):
            gain = res.final_loss / solution.final_loss - 1
            if not res.bracketed:  # a margin over an unconverged baseline means nothing
                print(
                    f"  {name:<10} (peak {res.peak_lr:.4g}): {res.final_loss:.6g}  (its best "
                    "peak was not bracketed above 1e-8 of the cap: no margin)"
                )
                continue
            verb = "beats" if gain >= 0 else "loses to"
            cap = ", at the cap" if res.at_cap else ""
            print(
                f"  {verb} {name:<10} (peak {res.peak_lr:.4g}{cap}): {res.final_loss:.6g}  "
                f"by {100 * abs(gain):.2f}%"
            )
        print(f"schedule written to {args.out}")
    return 0


def _check_result(solution, out) -> None:
    """A solve stopped at its iteration limit still writes its best schedule (it is never worse
    than the best tuned baseline; the file records ``"result"``), with a warning; any other
    failure is an error, one line, and nothing is written."""
    from .solver.solution import RESULTS, SolveError

    if solution.succeeded:
        return
    if solution.result != RESULTS.max_steps_reached:
        raise SolveError(RESULTS[solution.result], solution)
    best = solution.best_baseline()
    print(
        "warning: the optimiser stopped at its iteration limit on the finest knots while the "
        "optimum was still moving (its last 50-100 iterations lowered the loss by more than "
        f"0.1%); {out} holds the best "
        f"schedule found ({solution.final_loss:.6g}; best baseline {best.name} "
        f'{best.final_loss:.6g}), marked "result": "max_steps_reached". For more iterations: '
        "optsched.solve(..., optimiser=optsched.LBFGS(maxiter=...)) in Python.",
        file=sys.stderr,
    )


def cmd_evaluate(args) -> int:
    from .dynamics.choice import grid_for
    from .evaluate import loss_curve
    from .io import load

    f = load(args.file)
    if f.problem is None:
        raise UsageError(
            f"{args.file} was solved on a {f.model.get('kind', 'loss')} model, not "
            "the power-law problem: there is no recursion to evaluate it with"
        )
    sched, problem = f.schedule.to_units("model"), f.problem
    grid = grid_for(problem, 10.0 * sched.intrinsic_time(), exact=True, horizon=sched.horizon)
    how = "exact recursion, " + ("exact modes" if grid.exact else "mode quadrature")
    traj = loss_curve(problem, sched, method="scan", grid=grid, check=False)
    final = float(traj.final_loss)
    if bool(traj.diverged) or not math.isfinite(final):
        raise UsageError(f"the schedule in {args.file} makes SGD diverge on its problem")
    if f.model.get("kind") == "FittedProblem" and "fit" in f.diagnostics:
        fit = f.diagnostics["fit"].get("values", {})
        if "loss_scale" in fit:  # report in the runs' units, as the file predicted
            final = fit["loss_floor"] + fit["loss_scale"] * final
    if args.json:
        print(
            json.dumps(
                {
                    "final_loss": final,
                    "horizon": sched.horizon,
                    "method": how,
                    "predicted_final_loss": f.predicted_final_loss,
                },
                allow_nan=False,
            )
        )
    else:
        print(f"{args.file}: final excess loss L_T = {final:.6g} at T = {sched.horizon} ({how})")
        if f.predicted_final_loss is not None:
            print(
                f"predicted in the file: {f.predicted_final_loss:.6g} "
                f"(relative difference {final / f.predicted_final_loss - 1:+.2e})"
            )
    return 0


def cmd_export(args) -> int:
    from .export import to_csv, to_optax_source
    from .io import load, write_text

    if args.out is not None:
        _check_writable(args.out, [args.file])
    f = load(args.file)
    if args.warmup < 0 or args.warmup > f.schedule.horizon:
        raise UsageError(f"--warmup must be 0 .. T = {f.schedule.horizon} steps, got {args.warmup}")
    export = to_csv if args.format == "csv" else to_optax_source
    text = export(f, warmup=args.warmup)
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_text(text, args.out)
        print(f"{args.format} export of {args.file} written to {args.out}", file=sys.stderr)
    return 0


def cmd_phase(args) -> int:
    from .model.theory import exponents

    e = exponents(args.a, args.b)
    if args.json:
        print(json.dumps({"a": args.a, "b": args.b, **e.to_dict()}, allow_nan=False))
    else:
        print(f"a={args.a:g}, b={args.b:g}: {e.phase} phase")
        print(f"  peak learning rate  eta* ~ T^-xi,  xi = {e.xi:.4g}")
        print(f"  final decay        (1 - t/T)^delta, delta = {e.delta:.4g}")
        print(f"  optimal loss        L_T ~ T^-{e.loss_optimal:.4g}")
        print(f"  best constant rate  L_T ~ T^-{e.loss_constant:.4g}")
    return 0


def cmd_reproduce(args) -> int:
    from .reproduce import EXPERIMENTS, checks_table, reproduce

    unknown = [name for name in args.only or () if name not in EXPERIMENTS]
    if unknown:
        raise UsageError(f"unknown experiment {unknown[0]!r}; choose from {', '.join(EXPERIMENTS)}")
    show = _progress(args.quiet)
    results = reproduce(args.out, quick=args.quick, only=args.only, progress=show)
    if show:
        sys.stderr.write("\n")
    from .reproduce import Check

    checks = [
        Check(**{k: v for k, v in c.items() if k != "passed"})
        for entry in results["experiments"].values()
        for c in entry["checks"]
    ]
    if not args.quiet:
        print(checks_table(checks))
        passed = sum(c.passed for c in checks)
        print(
            f"\n{passed}/{len(checks)} checks within tolerance; figures and results.json in "
            f"{args.out}"
        )
    return 0


MODELS = {
    "plrf": "the power-law random-feature model",
    "mpl": "the multi-power law",
    "convex": "the convex last-iterate bound",
}


def _fit_model(kind: str, runs, allow_rising: bool = False, progress=None):
    from .loss_models.convex import fit_convex_bound
    from .loss_models.fitted import fit
    from .loss_models.fitting import LossSpikeWarning
    from .loss_models.multipower import fit_multi_power_law

    fitter = {"plrf": fit, "mpl": fit_multi_power_law, "convex": fit_convex_bound}[kind]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LossSpikeWarning)
        model = fitter(runs, allow_rising=allow_rising, progress=progress)
    for w in caught:  # spikes left out of the fit, one line per run
        print(f"warning: {w.message}", file=sys.stderr)
    return model


def _solve_floor(lr_min: float | None, model, lr_max: float) -> float:
    """The solved schedule's lowest rate: ``--lr-min``, else the pilots' lowest rate after
    their peaks for a model that records it (the multi-power law: below it, its drop term was
    never measured), else 0."""
    if lr_min is not None:
        if not lr_min < lr_max:
            raise UsageError(f"--lr-min {lr_min:g} must be below the rate cap {lr_max:g}")
        return lr_min
    floor = getattr(model, "pilot_floor", None)
    return float(floor) if floor is not None and floor < lr_max else 0.0


def _versus_best_baseline(model, solution) -> dict | None:
    """How surely the solved schedule beats the best tuned baseline under the fitted model: the
    gap in predicted final loss, its standard error from the fit's covariance (delta method;
    the two predictions share the parameters, so their errors partly cancel) and the
    probability that the gap is positive (:func:`optsched.ranking.rank`). ``None`` when the
    solve returned the baseline itself."""
    from .ranking import rank

    if solution.stats.get("fallback_to_baseline"):
        return None
    best = solution.best_baseline()
    try:
        out = rank(model, [("optimal", solution.schedule), ("baseline", best.schedule)])
    except ValueError as err:  # a diagnostic: the solved schedule stands without it
        print(f"warning: no comparison with the best baseline: {err}", file=sys.stderr)
        return None
    loss = {r["candidate"]: r["predicted_final_loss"] for r in out["ranking"]}
    gap = loss["baseline"] - loss["optimal"]
    p, V = out["p_first_beats_second"], out["covariance"]
    if V is not None:
        stderr = math.sqrt(max(V[0][0] + V[1][1] - 2.0 * V[0][1], 0.0))
        if out["ranking"][0]["candidate"] != "optimal" and p is not None:
            p = 1.0 - p  # the probability that the optimum is the better one
    else:
        stderr = None
    return {"baseline": best.name, "gap": gap, "gap_stderr": stderr, "p_better": p}


def cmd_fit(args) -> int:
    from .io import to_json, write_json
    from .loss_models.store import save_model
    from .solver.parameterisation import LearningRate
    from .solver.solve import solve

    if args.out is None and args.save_model is None:
        raise UsageError(
            "give --save-model MODEL.json, or --horizon T --out schedule.json, or both"
        )
    if (args.out is None) != (args.horizon is None):
        raise UsageError("--horizon T and --out schedule.json go together")
    if args.horizon is not None and args.horizon < 1:
        raise UsageError(f"horizon must be >= 1, got {args.horizon}")
    if args.lr_min is not None and not (math.isfinite(args.lr_min) and args.lr_min >= 0):
        raise UsageError(f"--lr-min must be a rate >= 0, got {args.lr_min:g}")
    for target in (args.out, args.save_model):
        if target is not None:
            _check_writable(target, args.runs)
    runs = _read_pilots(args.runs, args.loss, args.schedule)
    show = _progress(args.quiet)
    if show:
        show(f"fitting {MODELS[args.model]} to {len(runs)} runs")
    t0 = time.perf_counter()
    model = _fit_model(args.model, runs, args.allow_rising, show)
    fit_s = time.perf_counter() - t0
    if args.save_model is not None:
        save_model(model, args.save_model)
    values = model.describe().get("values", {})
    stderr = getattr(model, "stderr", None) or {}
    if not args.quiet:
        if show:
            sys.stderr.write("\r\033[K")
        print(
            f"fitted {MODELS[args.model]} to {len(runs)} runs in {fit_s:.1f} s: "
            + ", ".join(
                f"{k} = {v:.4g}" + (f" +- {stderr[k]:.2g}" if k in stderr else "")
                for k, v in values.items()
            )
        )
        if args.save_model is not None:
            print(f"model written to {args.save_model}")
    if args.out is None or args.horizon is None:
        return 0
    lr_max = args.lr_max or max(float(np.max(np.asarray(r.schedule.lr))) for r in runs)
    if show:
        show(f"solving T = {args.horizon}")
    lr_min = _solve_floor(args.lr_min, model, lr_max)
    # the multi-power law knows decays only (its pilots warm up, then decay): search those
    controls = LearningRate(lr_max=lr_max, decay_only=args.model == "mpl", lr_min=lr_min)
    solution = solve(model, args.horizon, controls, progress=show, throw=False)
    _check_result(solution, args.out)
    versus = _versus_best_baseline(model, solution)
    warmup = max(int(r.warmup) for r in runs)
    ramped = _predicted_with_warmup(model, solution.schedule, warmup)
    data = to_json(solution)  # the schedule in the runs' units
    data["diagnostics"]["fit"] = {
        "model": args.model,
        "values": values,
        "stderr": stderr,
        "residual_rms_log_loss": getattr(model, "residual_rms", None),
        "runs": len(runs),
        "lr_max": lr_max,
        "lr_min": lr_min,
        "time_s": fit_s,
        "versus_best_baseline": versus,
        "pilot_warmup": {"steps": warmup, "predicted_final_loss_with_it": ramped},
    }
    write_json(data, args.out)
    if show:
        sys.stderr.write("\r\033[K")
    _warn_extrapolation(model, solution.schedule, args.out)
    if not args.quiet:
        print(
            f"optimal schedule for T = {args.horizon} ("
            + (f"{lr_min:g} <= " if lr_min > 0 else "")
            + f"lr <= {lr_max:g}): predicted loss "
            f"{solution.final_loss:.5g}; written to {args.out} (learning rates in your units)"
        )
        if versus is not None:
            sure = (
                ""
                if versus["gap_stderr"] is None
                else f" +- {versus['gap_stderr']:.2g}, probability {versus['p_better']:.3f}"
                " (the fit's uncertainty, not the model's own error)"
            )
            print(
                f"it beats the best tuned baseline ({versus['baseline']}) by "
                f"{versus['gap']:.3g}{sure}"
            )
        if ramped is not None:
            print(
                f"it starts at full rate; the pilots warmed up over {warmup} steps: "
                f"optsched export {args.out} --format csv --warmup {warmup} adds that ramp "
                f"(predicted loss with it: {ramped:.5g})"
            )
    return 0


def _predicted_with_warmup(model, schedule, warmup: int) -> float | None:
    """The model's final loss for ``schedule`` behind the linear warm-up ``min(1, (t+1)/W)``
    that ``optsched export --warmup W`` adds (``None`` without a warm-up, or one as long as the
    run)."""
    from .export import warmup_factors
    from .schedule import Schedule

    T = schedule.horizon
    if not 0 < warmup <= T:
        return None
    lr = np.asarray(schedule.per_step(1.0)[0], dtype=np.float64) * warmup_factors(T, warmup)
    ramped = Schedule(np.arange(T), lr, horizon=T, units=schedule.units, lr_scale=schedule.lr_scale)
    return float(model.predict(ramped, np.array([T]))[0])


def _check_writable(target, inputs) -> None:
    """Refuse to overwrite an input, and fail before the work on a folder that cannot be
    written."""
    target = pathlib.Path(target).resolve()
    if target.is_dir():
        raise UsageError(f"{target} is a folder; give the path of a file to write")
    if any(pathlib.Path(p).resolve() == target for p in inputs):
        raise UsageError(f"{target} is an input file; write to another path")
    folder = target.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write to {target}: {folder} is not a writable folder")


def _named_schedule(spec, what: str = "--schedule "):
    """``--schedule``: a schedule file, or ``FAMILY:PEAK:STEPS`` (e.g. ``cosine:3e-4:24000``);
    ``what`` starts the error messages."""
    from .io import load
    from .solver.baselines import family
    from .solver.family_names import FAMILIES

    if spec is None:
        return None
    if pathlib.Path(spec).is_file():
        return load(spec).schedule
    parts = str(spec).split(":")
    if len(parts) != 3 or parts[0] not in FAMILIES:
        raise UsageError(
            f"{what}{spec}: not a file, nor FAMILY:PEAK:STEPS with FAMILY one of "
            + ", ".join(FAMILIES)
        )
    try:
        peak, steps = float(parts[1]), int(parts[2])
    except ValueError:
        raise UsageError(f"{what}{spec}: PEAK must be a number and STEPS an integer") from None
    if not (math.isfinite(peak) and peak > 0 and steps >= 1):
        raise UsageError(f"{what}{spec}: PEAK must be positive and STEPS >= 1")
    return family(parts[0], peak, steps)


def _read_run_file(path, loss, schedule):
    """The run(s) of one RUN file; a CSV without an ``lr`` column, or a W&B export without
    ``train_lr``, takes its rates from ``schedule`` (``--schedule``), a file that logs its rates
    keeps them."""
    from .runs import RunFileWarning, csv_columns, read_run

    if schedule is not None:
        head = pathlib.Path(path).read_bytes()[:4096].decode("utf-8-sig", "ignore").lstrip()
        if not head.startswith("{") and "lr" in csv_columns(head)[1]:
            schedule = None  # a CSV with an lr column logs its rates (an export: read_run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunFileWarning)
        runs = read_run(path, loss=loss, schedule=schedule)
    for w in caught:  # what the reading rule left out, one line each
        print(f"warning: {w.message}", file=sys.stderr)
    return runs


def _read_pilots(paths, loss, schedule_spec):
    """The runs of ``paths`` (:func:`_read_run_file` each)."""
    schedule = _named_schedule(schedule_spec)
    return [run for path in paths for run in _read_run_file(path, loss, schedule)]


def _predict_target(path, loss, schedule=None):
    """``(schedule, steps, observed)`` of a RUN argument: a run file, a schedule file, or a
    named schedule ``FAMILY:PEAK:STEPS`` (``schedule``: the rates of a run CSV without an ``lr``
    column)."""
    from .io import READABLE, load

    if not pathlib.Path(path).exists():
        if ":" not in str(path):
            raise UsageError(f"cannot read {path}: no such file")
        sched = _named_schedule(path, what="")
    else:
        text_start = pathlib.Path(path).read_bytes()[:4096].decode("utf-8", "ignore")
        sched = load(path).schedule if any(fmt in text_start for fmt in READABLE) else None
        if sched is None and not text_start.lstrip().startswith("{"):
            from .runs import csv_columns, read_schedule_csv

            columns = csv_columns(text_start)[1]
            if "loss" not in columns and {"step", "lr"} <= columns:  # optsched export's CSV
                sched = read_schedule_csv(path)
    if sched is not None:
        T = sched.horizon
        steps = np.unique(np.round(np.geomspace(1, T, 200)).astype(np.int64))
        return sched, steps, None
    runs = _read_run_file(path, loss, schedule)
    if len(runs) != 1:
        raise UsageError(f"{path} holds {len(runs)} runs; predict reads one run per file")
    run = runs[0]
    return run.schedule, run.steps, run.loss


def _warn_extrapolation(model, schedule, label) -> str | None:
    """Why ``model``'s prediction of ``schedule`` extrapolates (``None`` if it does not), said
    on stderr as a warning about ``label``."""
    extrapolation = model.extrapolation(schedule)
    if extrapolation is not None:
        print(f"warning: {label}: {extrapolation}", file=sys.stderr)
    return extrapolation


def _finite_or_none(values) -> list:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def cmd_predict(args) -> int:
    from ._threads import map_on_cores
    from .loss_models.store import load_model

    model = load_model(args.model)
    rates = _named_schedule(args.schedule)
    targets = [_predict_target(path, args.loss, rates) for path in args.runs]
    # the runs are independent: side by side, one per core
    predictions = map_on_cores(lambda t: model.predict(t[0], t[1]), targets)
    out = []
    for path, (sched, steps, observed), predicted in zip(
        args.runs, targets, predictions, strict=True
    ):
        extrapolation = _warn_extrapolation(model, sched, path)
        out.append(
            {
                "run": path,
                "final_step": int(steps[-1]),
                "predicted_final_loss": _finite_or_none(predicted[-1:])[0],
                "observed_final_loss": None if observed is None else float(observed[-1]),
                "steps": [int(s) for s in steps],
                "predicted": _finite_or_none(predicted),
                "extrapolation": extrapolation,
            }
        )
    if args.json:
        print(json.dumps(out, allow_nan=False))
    else:
        print(f"{'run':<40} {'final step':>10} {'predicted':>10} {'observed':>10}")
        for r in out:
            obs = r["observed_final_loss"]
            pred = r["predicted_final_loss"]
            print(
                f"{pathlib.Path(r['run']).name:<40} {r['final_step']:>10d} "
                f"{pred if pred is None else f'{pred:.5g}':>10} "
                f"{'-' if obs is None else f'{obs:.5g}':>10}"
            )
    return 0


def cmd_rank(args) -> int:
    from .loss_models.store import load_model
    from .ranking import rank

    model = load_model(args.model)
    candidates = [(path, _predict_target(path, args.loss)[0]) for path in args.candidates]
    for path, sched in candidates:
        _warn_extrapolation(model, sched, path)
    result = rank(model, candidates)
    if args.json:
        print(json.dumps(result, allow_nan=False))
        return 0
    print(f"{'rank':>4}  {'candidate':<40} {'predicted final loss':>22}")
    for i, r in enumerate(result["ranking"], start=1):
        err = "" if r["stderr"] is None else f" +- {r['stderr']:.2g}"
        print(
            f"{i:>4}  {pathlib.Path(r['candidate']).name:<40} "
            f"{r['predicted_final_loss']:>12.5g}{err:>10}"
        )
    if result["p_first_beats_second"] is not None:
        print(
            f"probability that the first beats the second: {result['p_first_beats_second']:.3f}"
            " (the fit's uncertainty; not the model's own error)"
        )
    return 0


def cmd_max_peak(args) -> int:
    from .loss_models.fitted import FittedProblem
    from .loss_models.store import load_model

    model = load_model(args.model)
    if not isinstance(model, FittedProblem):
        raise UsageError(
            f"{args.model} holds a {type(model).__name__}; divergence is predicted by the "
            "power-law model (fit --model plrf): the multi-power law and the convex bound "
            "have no stability edge"
        )
    value, stderr = model.max_stable_peak(_named_schedule(args.schedule))
    pilots = model.pilot_peaks
    if pilots is not None and value > 4 * max(pilots):
        print(
            f"warning: the edge lies {value / max(pilots):.1f}x above the pilots' peak "
            f"{max(pilots):.3g}: an extrapolation of the fit",
            file=sys.stderr,
        )
    out = {
        "model": args.model,
        "schedule": args.schedule or "constant",
        "max_stable_peak": value,
        "stderr": stderr,
        "pilot_peaks": None if pilots is None else [float(p) for p in pilots],
    }
    if args.json:
        print(json.dumps(out, allow_nan=False))
    else:
        print(
            f"largest stable peak learning rate ({out['schedule']}): {value:.4g} +- {stderr:.2g}"
            " (the fit's uncertainty; above it the fitted model diverges)"
        )
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``optsched CMD: error: ...`` (see ``--help``), status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _model_and_files(parser, dest: str, metavar: str, text: str) -> None:
    """The arguments ``predict`` and ``rank`` share: a model file, the files it reads, and
    which logged loss of a weights-and-biases export to read."""
    parser.add_argument("model", metavar="MODEL.json", help="written by optsched fit")
    parser.add_argument(dest, nargs="+", metavar=metavar, help=text)
    parser.add_argument("--loss", choices=("val", "train"), default=None)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .solver.family_names import FAMILIES

    parser = _Parser(
        prog="optsched",
        description="Optimal training schedules from a solvable model of SGD.",
    )
    parser.add_argument("--version", action="version", version=f"optsched {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    curve = sub.add_parser("curve", help="expected loss curve of a standard schedule")
    _problem_args(curve)
    curve.add_argument("--horizon", type=int, default=EXAMPLE["horizon"], help="SGD steps T")
    curve.add_argument("--schedule", choices=FAMILIES, default="cosine")
    curve.add_argument("--lr", type=float, default=0.4, help="peak learning rate")
    curve.add_argument("--plot", default=None, help="write a PNG of schedule and loss")
    curve.add_argument("--json", action="store_true", help="print one JSON object")
    curve.set_defaults(func=cmd_curve)

    solve = sub.add_parser("solve", help="optimal learning-rate schedule -> schedule file")
    _problem_args(solve)
    solve.add_argument("--horizon", type=int, required=True, help="SGD steps T")
    solve.add_argument(
        "--lr-max",
        type=float,
        default=None,
        help="learning-rate cap (default: 99%% of the largest stable constant)",
    )
    solve.add_argument(
        "--momentum",
        action="store_true",
        help="also optimise the EMA momentum beta(t) (closed form per block for long runs)",
    )
    solve.add_argument(
        "--smooth",
        action="store_true",
        help="controls linear between knots (no staircase; evaluated step by step)",
    )
    solve.add_argument(
        "--batch-schedule",
        action="store_true",
        help="also optimise the batch size m(t) under --sample-budget",
    )
    solve.add_argument(
        "--sample-budget",
        type=float,
        default=None,
        help="samples D = sum_t m_t (batch sizes within [1, 16 D/T])",
    )
    solve.add_argument("--out", required=True, help="schedule file to write (JSON)")
    solve.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    solve.set_defaults(func=cmd_solve)

    evaluate = sub.add_parser("evaluate", help="final loss of a schedule file, exact recursion")
    evaluate.add_argument("file")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    export = sub.add_parser("export", help="schedule file -> CSV (any framework) or optax Python")
    export.add_argument("file")
    export.add_argument(
        "--format",
        choices=("csv", "optax-py"),
        required=True,
        help="csv: step,lr,momentum,batch at every step; optax-py: a module "
        "defining lr_schedule(count)",
    )
    export.add_argument("--out", default=None, help="file to write (default: stdout)")
    export.add_argument(
        "--warmup",
        type=int,
        default=0,
        metavar="STEPS",
        help="multiply the learning rate by the linear warm-up min(1, (t+1)/STEPS) (default 0: "
        "the solved rates as they are)",
    )
    export.set_defaults(func=cmd_export)

    fit = sub.add_parser(
        "fit", help="fit a loss model to real runs -> model file and/or optimal schedule file"
    )
    fit.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run files: CSV step,lr,loss (or run,step,lr,loss) or W&B JSON exports",
    )
    fit.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="plrf",
        help="plrf: power-law random features; mpl: multi-power law; convex: the "
        "convex bound (default plrf)",
    )
    fit.add_argument(
        "--loss",
        choices=("val", "train"),
        default=None,
        help="for W&B exports: which loss to fit (default: validation if logged)",
    )
    fit.add_argument(
        "--save-model",
        default=None,
        metavar="MODEL.json",
        help="write the fitted model (read by optsched predict)",
    )
    fit.add_argument("--horizon", type=int, default=None, help="steps T of the real run to solve")
    fit.add_argument(
        "--lr-max",
        type=float,
        default=None,
        help="learning-rate cap in your units (default: the runs' largest rate)",
    )
    fit.add_argument(
        "--lr-min",
        type=float,
        default=None,
        help="lowest rate of the solved schedule (default: 0; for --model mpl the pilots' "
        "lowest rate after their peaks, where the law was measured)",
    )
    fit.add_argument("--out", default=None, help="schedule file to write (JSON), with --horizon")
    fit.add_argument(
        "--schedule",
        default=None,
        metavar="FILE|FAMILY:PEAK:STEPS",
        help="the rates of runs that log none (a CSV without lr, an export without train_lr): "
        "a schedule file, or a named schedule such as cosine:3e-4:24000",
    )
    fit.add_argument(
        "--allow-rising",
        action="store_true",
        help="fit runs whose loss rises (refused by default: usually a diverged run)",
    )
    fit.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    fit.set_defaults(func=cmd_fit)

    predict = sub.add_parser("predict", help="a fitted model's loss curves for runs or schedules")
    _model_and_files(
        predict,
        "runs",
        "RUN",
        "run files (predicted at their logged steps), schedule files, or named schedules "
        "FAMILY:PEAK:STEPS (e.g. cosine:3e-4:24000)",
    )
    predict.add_argument(
        "--schedule",
        default=None,
        metavar="FILE|FAMILY:PEAK:STEPS",
        help="the rates of runs that log none (as for fit)",
    )
    predict.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list, one object per run (see docs/file-format.md)",
    )
    predict.set_defaults(func=cmd_predict)

    ranker = sub.add_parser(
        "rank",
        help="order candidate schedules by a fitted model's "
        "predicted final loss, with uncertainties",
    )
    _model_and_files(
        ranker,
        "candidates",
        "CANDIDATE",
        "schedule files, run files (their schedules), or named schedules FAMILY:PEAK:STEPS",
    )
    ranker.add_argument("--json", action="store_true", help="print one JSON object")
    ranker.set_defaults(func=cmd_rank)

    peak = sub.add_parser(
        "max-peak",
        help="the largest peak learning rate that does not diverge, from a fitted "
        "power-law model (plrf)",
    )
    peak.add_argument("model", metavar="MODEL.json", help="written by optsched fit --model plrf")
    peak.add_argument(
        "--schedule",
        default=None,
        metavar="FILE|FAMILY:PEAK:STEPS",
        help="the schedule whose peak is scaled (its own peak is ignored); default constant",
    )
    peak.add_argument("--json", action="store_true", help="print one JSON object")
    peak.set_defaults(func=cmd_max_peak)

    rep = sub.add_parser(
        "reproduce",
        help="every figure and measured number of the easy/hard "
        "phase study -> PNGs and results.json",
    )
    rep.add_argument("--out", required=True, help="folder for the figures and results.json")
    rep.add_argument("--quick", action="store_true", help="small sizes (under 3 minutes on CPU)")
    rep.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="EXPERIMENT",
        help="run only these experiments (default: all)",
    )
    rep.add_argument("-q", "--quiet", action="store_true", help="no progress or table")
    rep.set_defaults(func=cmd_reproduce)

    phase = sub.add_parser("phase", help="phase and theory exponents for (a, b)")
    phase.add_argument("--a", type=float, required=True)
    phase.add_argument("--b", type=float, required=True)
    phase.add_argument("--json", action="store_true")
    phase.set_defaults(func=cmd_phase)
    return parser


def _enable_compilation_cache() -> None:
    """Keep XLA's compiled programs on disk so a second ``optsched`` run skips compilation.

    ``OPTSCHED_CACHE_DIR`` chooses the folder (default ``~/.cache/optsched/xla``); an empty
    value turns the cache off.
    """
    import os

    path = os.environ.get("OPTSCHED_CACHE_DIR", os.path.expanduser("~/.cache/optsched/xla"))
    if not path:
        return
    import jax

    try:
        jax.config.update("jax_compilation_cache_dir", path)
        # every program, however quick to compile: a solve compiles about 60 small ones
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    except Exception:  # an older jax without the persistent cache: run without it
        pass


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _enable_compilation_cache()
    from ._precision import float64
    from .solver.solution import SolveError

    try:
        with float64():
            return args.func(args)
    except KeyboardInterrupt:
        print(f"optsched {args.command}: interrupted; no file was changed", file=sys.stderr)
        return 130
    except (UsageError, ValueError, OSError) as err:
        print(f"optsched {args.command}: error: {err}", file=sys.stderr)
        return 2
    except SolveError as err:  # the solve ran and failed: its schedule was not written
        print(f"optsched {args.command}: error: {err}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as err:
        if err.name != "matplotlib":
            raise
        print(
            f"optsched {args.command}: error: plots need matplotlib: pip install 'optsched[plot]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
