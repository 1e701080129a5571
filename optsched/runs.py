r"""Reading real training runs: CSV files and weights-and-biases JSON exports, as :class:`PilotRun`.

Accepted files (:func:`read_run`; :func:`read_runs` reads several):

* **CSV** with a header ``step,lr,loss`` (one run per file; extra columns are ignored), the loss
  optional per row; or the multi-run form ``run,step,lr,loss``. Column names in any case,
  separated by commas, tabs or semicolons; a UTF-8 byte-order mark and blank lines are ignored.
  Without an ``lr`` column, a ``schedule=`` (a :class:`~optsched.Schedule` or a schedule file)
  gives the rates (so it does for a JSON export that logs no ``train_lr``).
* **weights-and-biases JSON** exports with ``history.train.{iter, train_lr, train_loss}`` and
  ``history.val.{iter, val_loss}`` (``loss="val"``, the default when validation losses exist, or
  ``loss="train"``; a ``history.val`` that logs none is read as training loss, with a
  warning), and ``config.iterations`` (the horizon) when present. A ``null`` or ``NaN`` entry is
  a step that logged nothing and is skipped; an infinite one is refused.

**The per-step learning rate is rebuilt from what was logged**, by one documented rule:

1. between logged steps, linear interpolation of the logged rates (a jump between two logs is
   placed as a ramp across that interval);
2. before the first logged rate: a linear warm-up from 0 at step 0 to the first logged rate over
   the run's warm-up length when it is known (``config.warmup_steps`` of a W&B export), then that
   rate held up to the first log (a run branched from another one logs from the branch point
   on); when it is not known, the warm-up is taken to end at the first log. A run whose first
   rate is logged at step 0 has no such ramp;
3. after the last logged rate, that rate is held up to the horizon.

**A restarted run.** A W&B history whose steps go back (a run resumed from a checkpoint logs the
steps since that checkpoint again; exports may also list the attempts out of order) is read as
segments of increasing steps. The run is the segment that reaches the furthest step, preceded by
the steps below its first one from the other segments (the first in the file wins where they
repeat a step); repeated steps take the furthest-reaching segment's value. What this drops is
said in a :class:`RunFileWarning`. CSV files must list each run's steps in increasing order.

The horizon ``T`` is ``config.iterations`` when given, else the last step with a logged loss.
The loss logged at step ``s`` is the loss after ``s`` updates.

**Warm-up is warm-up, not data.** The schedule keeps the warm-up (it moves the model: the
intrinsic time counts it), but losses logged before the warm-up ends (the first step at which the
rate reaches 99% of its peak, when that is within the first half of the run) are not fitted:
:attr:`PilotRun.warmup` records that step and the fits skip earlier points.

Malformed input (a missing column, a non-number, a non-finite or non-positive loss, a CSV's steps
out of order or repeated, an empty run) raises :class:`RunFileError` naming the file and the line.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
import warnings
from collections.abc import Iterator, Sequence

import numpy as np

from .loss_models.fitted import PilotRun
from .schedule import Schedule

__all__ = [
    "RunFileError",
    "RunFileWarning",
    "csv_columns",
    "read_run",
    "read_runs",
    "read_schedule_csv",
    "rates_from_log",
]


class RunFileError(ValueError):
    """A run file that cannot be read as a training run."""


class RunFileWarning(UserWarning):
    """A run file read by a rule that left some of its rows out (a restarted run's repeats)."""


MAX_STEPS = 10**8
"""The longest run read (steps): its schedule is kept per step, 16 bytes a step and more in fits."""


def rates_from_log(steps, rates, horizon: int, warmup: int | None = None) -> np.ndarray:
    """Per-step rates ``0 .. horizon-1`` from logged ``(step, rate)`` pairs (the module's rule;
    ``warmup`` is the run's warm-up length when known)."""
    steps = np.asarray(steps, dtype=np.int64)
    rates = np.asarray(rates, dtype=np.float64)
    if steps.size == 0:
        raise ValueError("no learning rates were logged")
    if steps[0] > 0:  # the unlogged beginning: a linear warm-up from 0, then the first rate
        end = int(steps[0]) if warmup is None else min(max(int(warmup), 0), int(steps[0]))
        head_steps, head_rates = [0], [0.0]
        if 0 < end < steps[0]:
            head_steps.append(end)
            head_rates.append(float(rates[0]))
        steps = np.concatenate([head_steps, steps])
        rates = np.concatenate([head_rates, rates])
    t = np.arange(horizon)
    return np.interp(t, steps, rates)  # holds the last rate after the last log


def _warmup_end(lr: np.ndarray) -> int:
    """The first step at which the rate reaches 99% of its peak (0 if that is late in the run:
    then the rise is part of the schedule, not a warm-up)."""
    peak = float(np.max(lr))
    if peak <= 0:
        return 0
    end = int(np.argmax(lr >= 0.99 * peak))
    return end if end <= len(lr) // 2 else 0


def _number(value: str, what: str, where: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise RunFileError(f"{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise RunFileError(f"{where}: {what} must be finite, got {value!r}")
    return out


def _check_steps(steps: np.ndarray, where: str) -> None:
    if np.any(steps < 0):
        raise RunFileError(f"{where}: steps must be >= 0")
    if np.any(np.diff(steps) <= 0):
        i = int(np.argmax(np.diff(steps) <= 0))
        raise RunFileError(f"{where}: steps must increase; step {steps[i + 1]} follows {steps[i]}")


def _run(name, log_steps, log_lr, loss_steps, losses, horizon, where, warmup=None) -> PilotRun:
    log_steps, loss_steps = np.asarray(log_steps, np.int64), np.asarray(loss_steps, np.int64)
    losses = np.asarray(losses, dtype=np.float64)
    _check_steps(log_steps, where + " (learning rates)")
    _check_steps(loss_steps, where + " (losses)")
    if losses.size < 2:
        raise RunFileError(f"{where}: a run needs at least two logged losses, got {losses.size}")
    if np.any(losses <= 0):
        raise RunFileError(f"{where}: losses must be positive")
    if horizon is None:
        horizon = int(loss_steps[-1])
    if horizon < 1 or loss_steps[-1] > horizon:
        raise RunFileError(f"{where}: losses logged after the horizon T = {horizon}")
    if horizon > MAX_STEPS:
        raise RunFileError(
            f"{where}: a run of {horizon} steps is longer than optsched reads ({MAX_STEPS:.0e}: "
            "its per-step rates would not fit in memory); check the step column"
        )
    lr = rates_from_log(log_steps, log_lr, horizon, warmup)
    if np.any(lr < 0):
        raise RunFileError(f"{where}: learning rates must be >= 0")
    schedule = Schedule(np.arange(horizon), lr, horizon=horizon, units="real")
    return PilotRun(schedule, loss_steps, losses, name=name, warmup=_warmup_end(lr))


def _read_text(path: pathlib.Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark (Excel) is not text
    except UnicodeDecodeError as err:
        raise RunFileError(f"{path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise RunFileError(f"cannot read {path}: {err.strerror}") from None


def csv_columns(text: str) -> tuple[str, set[str]]:
    """The delimiter (comma, tab or semicolon, from the header line) and the column names, lower
    case and stripped, of a CSV run file's ``text``."""
    lines = text.lstrip("\ufeff").splitlines()
    header = next((line for line in lines if line.strip()), "")
    delimiter = next((d for d in (",", "\t", ";") if d in header), ",")
    return delimiter, {c.strip().lower() for c in header.split(delimiter)}


def _csv_rows(
    path: pathlib.Path, text: str, need: set[str], hint: str = ""
) -> tuple[set[str], Iterator[tuple[str, dict[str, str], int]]]:
    """The header's columns of a CSV file's ``text`` and its rows as ``(where, row, step)``: the
    row with lower-case stripped keys and values, its integer ``step``. Missing ``need`` columns
    (with ``hint`` when only ``lr`` is missing) raise :class:`RunFileError` at once; a row longer
    than the header or a step that is not an integer when its row is reached."""
    delimiter, columns = csv_columns(text)
    missing = need - columns
    if missing:
        hint = hint if missing == {"lr"} else ""
        raise RunFileError(f"{path}: missing column(s) {', '.join(sorted(missing))}{hint}")

    def rows():
        reader = csv.DictReader(text.splitlines(), delimiter=delimiter)  # blank lines skipped
        for raw in reader:
            where = f"{path}, line {reader.line_num}"
            if None in raw:  # DictReader files surplus fields under None
                raise RunFileError(f"{where}: more fields than the header's {len(columns)}")
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
            step = _number(row["step"], "step", where)
            if step != int(step):
                raise RunFileError(f"{where}: step must be an integer, got {row['step']!r}")
            yield where, row, int(step)

    return columns, rows()


def _read_csv(path: pathlib.Path, text: str, schedule: Schedule | None) -> list[PilotRun]:
    need = {"step", "loss"} | (set() if schedule is not None else {"lr"})
    columns, lines = _csv_rows(path, text, need, hint=" (or give the rates: schedule=, --schedule)")
    rows: dict[str, list] = {}
    for where, row, step in lines:
        lr = _number(row["lr"], "lr", where) if row.get("lr") else None
        loss = _number(row["loss"], "loss", where) if row.get("loss") else None
        rows.setdefault(row.get("run") or path.stem, []).append((step, lr, loss))
    if not rows:
        raise RunFileError(f"{path}: no rows")
    runs = []
    for name, entries in rows.items():
        where = f"{path}, run {name!r}" if "run" in columns else str(path)
        rates = [(s, lr) for s, lr, _ in entries if lr is not None]
        observed = [(s, y) for s, _, y in entries if y is not None]
        horizon = None
        if schedule is not None:
            horizon = schedule.horizon
            t = np.arange(horizon)
            rates = list(zip(t.tolist(), np.asarray(schedule.lr_at(t)).tolist(), strict=True))
        if not rates:
            raise RunFileError(f"{where}: no learning rates")
        if not observed:
            raise RunFileError(f"{where}: no losses")
        log_steps, log_lr = zip(*rates, strict=True)
        loss_steps, losses = zip(*observed, strict=True)
        runs.append(_run(name, log_steps, log_lr, loss_steps, losses, horizon, where))
    return runs


def _read_wandb(
    path: pathlib.Path, data: dict, loss: str | None, schedule: Schedule | None = None
) -> PilotRun:
    history = data.get("history")
    if not isinstance(history, dict) or not (
        isinstance(history.get("train"), dict) or (schedule is not None and "val" in history)
    ):
        raise RunFileError(f"{path}: not a weights-and-biases export (no history.train)")
    train: dict = history["train"] if isinstance(history.get("train"), dict) else {}
    val: dict = history["val"] if isinstance(history.get("val"), dict) else {}
    logs_rates = isinstance(train.get("train_lr"), list) and len(train["train_lr"]) > 0
    if schedule is not None and logs_rates:
        schedule = None  # the export's own logged rates win
    if loss is None:  # validation losses when any was logged (not only nulls)
        logged = val.get("val_loss")
        logged = logged if isinstance(logged, list) else []
        finite = any(isinstance(x, int | float) and math.isfinite(x) for x in logged)
        loss = "val" if finite else "train"
        if not finite and "val" in history:  # a validation table without a value: say so
            warnings.warn(
                RunFileWarning(
                    f"{path}: history.val logs no validation loss; reading the training loss "
                    "(history.train.train_loss) instead"
                ),
                stacklevel=3,
            )
    if loss not in ("val", "train"):
        raise RunFileError(f"loss must be 'val' or 'train', got {loss!r}")
    source = val if loss == "val" else train
    key = "val_loss" if loss == "val" else "train_loss"
    tables = [(source, f"history.{loss}", key)]
    if schedule is None:
        tables.insert(0, (train, "history.train", "train_lr"))
    for table, name, field in tables:
        for f in ("iter", field):
            if not isinstance(table.get(f), list) or not table[f]:
                hint = " (or give the rates: schedule=, --schedule)" if field == "train_lr" else ""
                raise RunFileError(f"{path}: {name}.{f} is missing or empty{hint}")
    steps, losses = _logged(path, f"history.{loss}", source["iter"], source[key])
    config: dict = data["config"] if isinstance(data.get("config"), dict) else {}
    horizon = config.get("iterations")
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int)):
        raise RunFileError(f"{path}: config.iterations must be an integer, got {horizon!r}")
    if schedule is not None:  # the rates of every step, from the named schedule
        horizon = schedule.horizon
        lr_steps = np.arange(horizon)
        lr = np.asarray(schedule.lr_at(lr_steps), dtype=np.float64)
    else:
        lr_steps, lr = _logged(path, "history.train", train["iter"], train["train_lr"])
    warmup = config.get("warmup_steps")
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int)):
        raise RunFileError(f"{path}: config.warmup_steps must be an integer, got {warmup!r}")
    return _run(path.stem, lr_steps, lr, steps, losses, horizon, str(path), warmup)


def _logged(path, name, steps, values) -> tuple[np.ndarray, np.ndarray]:
    """The logged ``(step, value)`` pairs of a W&B history column: finite pairs
    (:func:`_finite_pairs`) of the one attempt that makes the run (:func:`_one_attempt`)."""
    return _one_attempt(path, name, *_finite_pairs(path, name, steps, values))


def _one_attempt(path, name, steps: np.ndarray, values: np.ndarray):
    """The rows of a restarted run's history that make one run (module docstring)."""
    cuts = np.flatnonzero(np.diff(steps) <= 0) + 1
    if cuts.size == 0:
        return steps, values
    segments = np.split(np.arange(steps.size), cuts)
    main = max(range(len(segments)), key=lambda i: int(steps[segments[i][-1]]))
    first = int(steps[segments[main][0]])
    earlier: dict[int, float] = {}  # steps before the main segment, first occurrence wins
    for j in np.concatenate([rows for i, rows in enumerate(segments) if i != main]):
        if steps[j] < first:
            earlier.setdefault(int(steps[j]), float(values[j]))
    before = sorted(earlier)
    kept_steps = np.concatenate([np.asarray(before, dtype=np.int64), steps[segments[main]]])
    kept_values = np.concatenate([[earlier[k] for k in before], values[segments[main]]])
    last = int(steps[segments[main][-1]])
    taken = f", steps {before[0]}..{before[-1]} from the others" if before else ""
    warnings.warn(
        f"{path}: {name} holds {len(segments)} segments of increasing steps (a restarted "
        f"run): read steps {first}..{last} of the one that reaches the furthest{taken}; "
        f"{steps.size - kept_steps.size} of {steps.size} rows left out",
        RunFileWarning,
        stacklevel=5,  # the caller of read_run
    )
    return kept_steps, kept_values


def _finite_pairs(path, name, steps, values):
    if len(steps) != len(values):
        raise RunFileError(f"{path}: {name}: iter and values differ in length")
    try:  # W&B writes null or NaN where a step logged nothing: those rows are not data
        s = np.asarray([math.nan if x is None else x for x in steps], dtype=np.float64)
        v = np.asarray([math.nan if x is None else x for x in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise RunFileError(f"{path}: {name}: entries must be numbers") from None
    blown = np.isinf(v) & np.isfinite(s)
    if np.any(blown):
        at = int(s[np.argmax(blown)])
        raise RunFileError(f"{path}: {name}: infinite value at iter {at} (a diverged run?)")
    keep = np.isfinite(s) & np.isfinite(v)
    if np.sum(keep) < 2:
        raise RunFileError(f"{path}: {name}: fewer than two finite entries")
    if np.any(s[keep] != np.round(s[keep])):
        raise RunFileError(f"{path}: {name}: iter must be integers")
    return s[keep].astype(np.int64), v[keep]


def read_run(path, *, loss: str | None = None, schedule: Schedule | None = None) -> list[PilotRun]:
    """The run(s) in one file (CSV or weights-and-biases JSON; see the module docstring).

    Args:
        path: the file.
        loss: for JSON exports, ``"val"`` or ``"train"`` (default: validation when logged).
        schedule: the rates, for a CSV without an ``lr`` column or a JSON export without
            ``history.train.train_lr`` (a file that logs its rates keeps them).

    Returns:
        A list of :class:`PilotRun` (one, except for a multi-run CSV).
    """
    path = pathlib.Path(path)
    text = _read_text(path)
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise RunFileError(f"{path} is not valid JSON (line {err.lineno}: {err.msg})") from None
        if not isinstance(data, dict):
            raise RunFileError(f"{path}: expected a JSON object")
        return [_read_wandb(path, data, loss, schedule)]
    return _read_csv(path, text, schedule)


def read_schedule_csv(path) -> Schedule:
    """A schedule from a CSV with ``step`` and ``lr`` columns and no losses, as
    ``optsched export --format csv`` writes it (other columns are ignored): the rate of each
    listed step holds until the next, and the horizon is the last step + 1 (real units)."""
    path = pathlib.Path(path)
    _, lines = _csv_rows(path, _read_text(path), {"step", "lr"})
    steps, rates = [], []
    for where, row, step in lines:
        rate = _number(row["lr"], "lr", where)
        if rate < 0:
            raise RunFileError(f"{where}: learning rates must be >= 0")
        steps.append(step)
        rates.append(rate)
    if not steps:
        raise RunFileError(f"{path}: no rows")
    knots = np.asarray(steps, dtype=np.int64)
    _check_steps(knots, str(path))
    if knots[-1] + 1 > MAX_STEPS:
        raise RunFileError(
            f"{path}: a schedule of {knots[-1] + 1} steps is longer than optsched reads"
        )
    return Schedule(knots, np.asarray(rates), horizon=int(knots[-1]) + 1, units="real")


def read_runs(paths: Sequence, **kwargs) -> list[PilotRun]:
    """The runs of several files (:func:`read_run` on each, in order)."""
    runs = []
    for path in paths:
        runs += read_run(path, **kwargs)
    return runs
