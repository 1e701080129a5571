"""Schedule files, format ``optsched.schedule/1`` (JSON; the contract is in INTERFACE.md).

A file holds the knots of the schedule and their interpolation, the problem it was solved for,
the predicted final loss, the tuned baselines and solver diagnostics. Everything that reads a
file (``load``, ``optsched evaluate``, the optax export) expands the knots with
:func:`optsched.schedule.expand`, so the file, the exported schedule and the predicted loss
cannot disagree. Reading a broken file raises :class:`ScheduleFileError` with one clear line.

An optional top-level ``"lr_scale"`` (default 1) says how many model learning-rate units one
file unit is: ``optsched fit`` writes schedules in the pilot runs' own units, and ``evaluate``
multiplies by it before running the model.
"""

from __future__ import annotations

import json
import math
import pathlib

import equinox as eqx
import numpy as np

from .model.problem import PowerLawProblem
from .schedule import Schedule

__all__ = ["FORMAT", "ScheduleFile", "ScheduleFileError", "load", "save", "to_json"]

FORMAT = "optsched.schedule/1"


class ScheduleFileError(ValueError):
    """A schedule file that cannot be read: not JSON, wrong version, missing or bad entries."""


class ScheduleFile(eqx.Module):
    """The contents of a schedule file."""

    schedule: Schedule
    problem: PowerLawProblem
    predicted_final_loss: float | None
    baselines: dict
    solver: dict
    momentum_form: str = eqx.field(static=True, default="ema")
    lr_scale: float = 1.0
    """Model learning rate per file learning rate (files written by ``optsched fit`` hold the
    run's own units; everything else holds model units, scale 1)."""


def _clean(value):
    """JSON-ready copy: numpy/jax scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, str | bool) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    try:
        out = float(value)
    except (TypeError, ValueError):
        return str(value)
    return out if math.isfinite(out) else None


def to_json(solution) -> dict:
    """The file contents of a :class:`~optsched.solver.solve.Solution` as a dict."""
    sched = solution.schedule
    data = {
        "format": FORMAT,
        "horizon": sched.horizon,
        "interpolation": sched.interpolation,
        "steps": np.asarray(sched.steps).tolist(),
        "lr": np.asarray(sched.lr).tolist(),
    }
    if sched.momentum is not None:
        data["momentum"] = np.asarray(sched.momentum).tolist()
        data["momentum_form"] = solution.momentum_form
    if sched.batch is not None:
        data["batch"] = np.asarray(sched.batch).tolist()
    data["problem"] = solution.problem.to_dict()
    data["predicted_final_loss"] = float(solution.final_loss)
    data["baselines"] = {k: v.to_dict() for k, v in solution.baselines.items()}
    from . import __version__

    data["solver"] = {"version": __version__, "lr_max": float(solution.lr_max),
                      "phase": solution.phase, **solution.diagnostics}
    return _clean(data)


def save(solution, path) -> None:
    """Write ``solution`` to ``path`` in format ``optsched.schedule/1``."""
    text = json.dumps(to_json(solution), indent=1)
    pathlib.Path(path).write_text(text + "\n")


def load(path) -> ScheduleFile:
    """Read a schedule file; any problem with it raises :class:`ScheduleFileError`."""
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ScheduleFileError(f"cannot read {path}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ScheduleFileError(
            f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    if not isinstance(data, dict):
        raise ScheduleFileError(f"{path}: expected a JSON object at the top level")
    fmt = data.get("format")
    if fmt != FORMAT:
        raise ScheduleFileError(
            f"{path}: unsupported format {fmt!r}; this optsched reads {FORMAT!r}"
        )
    for key in ("horizon", "steps", "lr", "problem"):
        if key not in data:
            raise ScheduleFileError(f"{path}: missing entry {key!r}")
    try:
        schedule = Schedule(
            data["steps"], data["lr"], horizon=int(data["horizon"]),
            momentum=data.get("momentum"), batch=data.get("batch"),
            interpolation=data.get("interpolation", "linear"),
        )
        if not isinstance(data["problem"], dict):
            raise ValueError("'problem' must be an object")
        problem = PowerLawProblem.from_dict(data["problem"])
    except (ValueError, TypeError) as err:
        raise ScheduleFileError(f"{path}: {err}") from None
    form = data.get("momentum_form", "ema")
    if form not in ("ema", "heavy_ball"):
        raise ScheduleFileError(
            f"{path}: momentum_form must be 'ema' or 'heavy_ball', got {form!r}")
    predicted = data.get("predicted_final_loss")
    lr_scale = data.get("lr_scale", 1.0)
    if not (isinstance(lr_scale, int | float) and math.isfinite(lr_scale) and lr_scale > 0):
        raise ScheduleFileError(f"{path}: lr_scale must be a positive number, got {lr_scale!r}")
    return ScheduleFile(
        schedule=schedule,
        problem=problem,
        predicted_final_loss=None if predicted is None else float(predicted),
        baselines=dict(data.get("baselines") or {}),
        solver=dict(data.get("solver") or {}),
        momentum_form=form,
        lr_scale=float(lr_scale),
    )
