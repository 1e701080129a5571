"""Fitted loss models on disk: JSON, format ``optsched.model/1``.

``{"format": "optsched.model/1", "kind": "MultiPowerLaw" | "ConvexBound" | "FittedProblem",
...the model's values...}``; written by ``optsched fit --save-model`` and read by ``optsched
predict``. Every value a model needs to predict is stored exactly (``repr`` of each float
through JSON), so a loaded model predicts what the saved one did.
"""

from __future__ import annotations

import json
import math
import pathlib

import jax.numpy as jnp
import numpy as np

from .._precision import with_float64
from ..model.problem import PowerLawProblem
from .base import AbstractLossModel
from .convex import ConvexBound
from .fitted import FittedProblem
from .multipower import MultiPowerLaw

__all__ = ["MODEL_FORMAT", "ModelFileError", "load_model", "model_to_json", "save_model"]

MODEL_FORMAT = "optsched.model/1"


class ModelFileError(ValueError):
    """A model file that cannot be read."""


def model_to_json(model: AbstractLossModel) -> dict:
    """The file contents of a fitted loss model."""
    if isinstance(model, MultiPowerLaw):
        body = {
            "params": [float(x) for x in np.asarray(model.params)],
            "covariance": _matrix(model.covariance),
            "lr_unit": model.lr_unit,
            "stderr": model.stderr,
            "residual_rms": _finite_or_none(model.residual_rms),
            "pilot_floor": model.pilot_floor,
        }
    elif isinstance(model, ConvexBound):
        body = {
            "u": model.u,
            "v": model.v,
            "loss_floor": model.loss_floor,
            "lr_unit": model.lr_unit,
            "stderr": model.stderr or {},
            "covariance": _matrix(model.covariance),
        }
    elif isinstance(model, FittedProblem):
        body = {
            "problem": model.problem.to_dict(),
            "lr_scale": model.lr_scale,
            "loss_scale": model.loss_scale,
            "loss_floor": model.loss_floor,
            "stderr": model.stderr,
            "covariance": np.asarray(model.covariance).tolist(),
            "residual_rms": _finite_or_none(model.residual_rms),
            "max_time": model.max_time,
        }
    else:
        raise TypeError(f"cannot save a {type(model).__name__}")
    peaks = getattr(model, "pilot_peaks", None)
    body["pilot_peaks"] = None if peaks is None else [float(x) for x in peaks]
    return {"format": MODEL_FORMAT, "kind": type(model).__name__, **body}


def save_model(model: AbstractLossModel, path) -> None:
    """Write ``model`` to ``path`` (atomically)."""
    from ..io import write_json

    write_json(model_to_json(model), path)


@with_float64
def load_model(path) -> AbstractLossModel:
    """Read a model file; anything wrong with it raises :class:`ModelFileError`."""
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"cannot read the model file {path}: {err}") from None
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not a model file (format {MODEL_FORMAT!r})")
    try:
        return _model(data)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: {type(err).__name__}: {err}") from None


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an unknown number (a model built by hand, not fitted) is written null."""
    return float(value) if math.isfinite(float(value)) else None


def _float_or_nan(value) -> float:
    return math.nan if value is None else float(value)


def _matrix(value) -> list | None:
    return None if value is None else np.asarray(value, dtype=np.float64).tolist()


def _read_matrix(data: dict, size: int) -> np.ndarray | None:
    value = data.get("covariance")
    if value is None:
        return None
    matrix = np.asarray(value, dtype=np.float64)
    if matrix.shape != (size, size) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"covariance must be a finite {size} x {size} matrix")
    return matrix


def _read_peaks(data: dict) -> tuple[float, float] | None:
    value = data.get("pilot_peaks")
    if value is None:
        return None
    peaks = np.asarray(value, dtype=np.float64)
    if peaks.shape != (2,) or not (np.all(np.isfinite(peaks)) and 0 < peaks[0] <= peaks[1]):
        raise ValueError(f"pilot_peaks must be two positive rates, lowest first, got {value!r}")
    return float(peaks[0]), float(peaks[1])


def _read_floor(data: dict) -> float | None:
    value = data.get("pilot_floor")
    if value is None:  # files written before it was recorded
        return None
    floor = float(value)
    if not (math.isfinite(floor) and floor >= 0):
        raise ValueError(f"pilot_floor must be a rate >= 0, got {value!r}")
    return floor


def _positive(data: dict, key: str) -> float:
    value = float(data[key])
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{key} must be a positive number, got {data[key]!r}")
    return value


def _model(data: dict) -> AbstractLossModel:
    kind = data.get("kind")
    if kind == "MultiPowerLaw":
        params = jnp.asarray(np.asarray(data["params"], dtype=np.float64))
        if params.shape != (7,) or not np.all(np.isfinite(params)):
            raise ValueError("params must be 7 finite numbers")
        return MultiPowerLaw(
            params,
            _positive(data, "lr_unit"),
            dict(data.get("stderr") or {}),
            _float_or_nan(data.get("residual_rms")),
            covariance=_read_matrix(data, 7),
            pilot_peaks=_read_peaks(data),
            pilot_floor=_read_floor(data),
        )
    if kind == "ConvexBound":
        return ConvexBound(
            _positive(data, "u"),
            _positive(data, "v"),
            float(data["loss_floor"]),
            _positive(data, "lr_unit"),
            dict(data.get("stderr") or {}),
            covariance=_read_matrix(data, 3),
            pilot_peaks=_read_peaks(data),
        )
    if kind == "FittedProblem":
        return FittedProblem(
            PowerLawProblem.from_dict(data["problem"]),
            _positive(data, "lr_scale"),
            _positive(data, "loss_scale"),
            float(data["loss_floor"]),
            dict(data.get("stderr") or {}),
            np.asarray(data.get("covariance", np.zeros((6, 6)))),
            _float_or_nan(data.get("residual_rms")),
            max_time=float(data.get("max_time", 1e4)),
            pilot_peaks=_read_peaks(data),
        )
    raise ValueError(f"unknown model kind {kind!r}")
