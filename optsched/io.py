r"""Schedule files: JSON, format ``optsched.schedule/2`` (written), ``/1`` (still read).

The format and its migration rule are documented in ``docs/file-format.md``. A file holds the
schedule's knots, interpolation, momentum form and units at the top level (so that a reader of the
schedule needs nothing else), the loss model it was solved for, the predicted final loss, the
tuned baselines, and, kept apart under ``"diagnostics"``, everything about how it was solved.
Everything that reads a file (``load``, ``optsched evaluate``, the optax export) expands the knots
with :func:`optsched.schedule.expand`, so the file, the exported schedule and the predicted loss
cannot disagree. Reading a broken file raises :class:`ScheduleFileError` with one clear line.

**Migration rule, v1 -> v2.** A v1 file is read as the v2 file with: ``"units": "real"`` and its
``"lr_scale"`` when it has a top-level ``"lr_scale"`` (written by ``optsched fit``), else
``"units": "model"`` and scale 1; ``"model"`` = the power-law ``"problem"`` (kind
``"PowerLawProblem"``, or ``"FittedProblem"`` when it has an ``lr_scale``); ``"diagnostics"`` =
its ``"solver"`` entry, with its ``"fit"`` entry (if any) under ``"diagnostics"["fit"]``; and
for a fitted file, ``"predicted_final_loss"`` in the runs' loss units (v1 held the model's excess
loss :math:`L`; v2 holds :math:`L_\infty + s_L L` with the fitted floor and scale).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import tempfile
from typing import cast

import equinox as eqx
import numpy as np

from .model.problem import PowerLawProblem
from .schedule import Schedule

__all__ = [
    "FORMAT",
    "READABLE",
    "ScheduleFile",
    "ScheduleFileError",
    "load",
    "migrate",
    "save",
    "schedule_entries",
    "to_json",
    "write_json",
    "write_text",
]

FORMAT = "optsched.schedule/2"
READABLE = ("optsched.schedule/1", FORMAT)


class ScheduleFileError(ValueError):
    """A schedule file that cannot be read: not JSON, wrong version, missing or bad entries."""


class ScheduleFile(eqx.Module):
    """The contents of a schedule file.

    Attributes:
        schedule: the schedule, with its units and momentum form.
        problem: the power-law problem whose dynamics predict the schedule's loss (model units),
            or ``None`` for a file solved on another loss model.
        model: the description of the loss model (``{"kind": ..., ...}``).
        predicted_final_loss: the loss the solver predicted (the model's units), or ``None``.
        baselines: the tuned baselines as written.
        diagnostics: how the schedule was solved (or fitted).
        format: the format the file was written in (``/1`` files are migrated on reading).
    """

    schedule: Schedule
    problem: PowerLawProblem | None
    model: dict
    predicted_final_loss: float | None
    baselines: dict
    diagnostics: dict
    format: str = eqx.field(static=True, default=FORMAT)

    @property
    def lr_scale(self) -> float:
        """Model learning rate per file learning rate (1 in model units)."""
        return self.schedule.lr_scale

    @property
    def momentum_form(self) -> str:
        return self.schedule.momentum_form


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


def schedule_entries(sched: Schedule) -> dict:
    """The top-level entries that describe a schedule (shared by every writer)."""
    data = {
        "horizon": sched.horizon,
        "interpolation": sched.interpolation,
        "units": sched.units or "model",
        "lr_scale": sched.lr_scale,
        "steps": np.asarray(sched.steps).tolist(),
        "lr": np.asarray(sched.lr).tolist(),
    }
    if sched.momentum is not None:
        data["momentum"] = np.asarray(sched.momentum).tolist()
        data["momentum_form"] = sched.momentum_form
    if sched.batch is not None:
        data["batch"] = np.asarray(sched.batch).tolist()
    return data


def to_json(solution) -> dict:
    """The file contents of a :class:`~optsched.Solution` as a dict (format v2)."""
    from . import __version__

    model = solution.model
    data = {"format": FORMAT, **schedule_entries(solution.schedule)}
    problem = getattr(model, "problem", model)
    if isinstance(problem, PowerLawProblem):
        data["problem"] = problem.to_dict()
    data["model"] = model.describe()
    data["predicted_final_loss"] = float(solution.final_loss)
    data["baselines"] = {k: v.to_dict() for k, v in solution.baselines.items()}
    data["diagnostics"] = {
        "version": __version__,
        "result": _result_name(solution.result),
        "lr_max": solution.lr_max,
        "phase": solution.phase,
        **solution.stats,
    }
    return cast(dict, _clean(data))


def _result_name(result) -> str:
    from .solver.solution import RESULTS

    for name in ("successful", "max_steps_reached", "nonfinite_loss"):
        if bool(result == getattr(RESULTS, name)):
            return name
    return "unknown"


def save(solution, path) -> None:
    """Write ``solution`` to ``path`` in format ``optsched.schedule/2`` (atomically)."""
    write_json(to_json(solution), path)


def write_json(data: dict, path) -> None:
    """Write ``data`` as strict JSON (no NaN or Infinity) to ``path`` atomically."""
    write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", path)


def write_text(text: str, path) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, flushed to
    disk, then a rename, so a reader never sees a half-written file and a kill (or Ctrl-C)
    leaves the old one."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def migrate(data: dict) -> dict:
    """A v1 file's contents as v2 (the rule in the module docstring); v2 passes through."""
    if data.get("format") != "optsched.schedule/1":
        return data
    data = dict(data)
    data["format"] = FORMAT
    scale = data.pop("lr_scale", None)
    data["units"], data["lr_scale"] = ("real", scale) if scale is not None else ("model", 1.0)
    diagnostics = dict(data.pop("solver", None) or {})
    if "fit" in data:
        diagnostics["fit"] = data.pop("fit")
        values = (
            diagnostics["fit"].get("values", {}) if isinstance(diagnostics["fit"], dict) else {}
        )
        predicted = data.get("predicted_final_loss")
        if isinstance(predicted, int | float) and {"loss_floor", "loss_scale"} <= set(values):
            # v1 predicted the model's excess loss; v2 predicts the runs' loss
            data["predicted_final_loss"] = values["loss_floor"] + values["loss_scale"] * predicted
    data["diagnostics"] = diagnostics
    if isinstance(data.get("problem"), dict):
        kind = "FittedProblem" if scale is not None else "PowerLawProblem"
        data["model"] = {"kind": kind, **data["problem"]}
    return data


def load(path) -> ScheduleFile:
    """Read a schedule file (v1 or v2); any problem with it raises :class:`ScheduleFileError`."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ScheduleFileError(f"{path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ScheduleFileError(f"cannot read {path}: {err.strerror}") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise ScheduleFileError(
            f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    except ValueError as err:
        raise ScheduleFileError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise ScheduleFileError(f"{path}: expected a JSON object at the top level")
    fmt = data.get("format")
    if fmt not in READABLE:
        raise ScheduleFileError(
            f"{path}: unsupported format {fmt!r}; this optsched reads {' and '.join(READABLE)}"
        )
    data = migrate(data)
    for key in ("horizon", "steps", "lr"):
        if key not in data:
            raise ScheduleFileError(f"{path}: missing entry {key!r}")
    horizon = data["horizon"]
    if isinstance(horizon, bool) or not isinstance(horizon, int):
        raise ScheduleFileError(f"{path}: horizon must be an integer, got {horizon!r}")
    try:
        units = data.get("units", "model")
        schedule = Schedule(
            data["steps"],
            data["lr"],
            horizon=horizon,
            momentum=data.get("momentum"),
            batch=data.get("batch"),
            interpolation=data.get("interpolation", "linear"),
            momentum_form=data.get("momentum_form", "ema"),
            units=units,
            lr_scale=data.get("lr_scale", 1.0) if units == "real" else 1.0,
        )
        problem = data.get("problem")
        if problem is not None:
            if not isinstance(problem, dict):
                raise ValueError("'problem' must be an object")
            problem = PowerLawProblem.from_dict(problem)
    except (ValueError, TypeError) as err:
        raise ScheduleFileError(f"{path}: {err}") from None
    predicted = data.get("predicted_final_loss")
    if predicted is not None and not (
        isinstance(predicted, int | float) and math.isfinite(predicted) and predicted > 0
    ):
        raise ScheduleFileError(
            f"{path}: predicted_final_loss must be a positive number, got {predicted!r}"
        )
    model = data.get("model")
    if model is None:
        model = {"kind": "PowerLawProblem", **problem.to_dict()} if problem is not None else {}
    return ScheduleFile(
        schedule=schedule,
        problem=problem,
        model=dict(model),
        predicted_final_loss=None if predicted is None else float(predicted),
        baselines=dict(data.get("baselines") or {}),
        diagnostics=dict(data.get("diagnostics") or {}),
        format=str(fmt),
    )


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")
