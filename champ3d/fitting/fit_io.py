"""Saving and loading fits: ``NAME.safetensors`` (tensors) beside ``NAME.json`` (metadata).

The safetensors file holds the body parameters (``params.*``), the per-frame flags and
errors, and the MediaPipe detections they were fitted to (``detections.*``). The JSON
file holds the camera, the body backend, the source media and the settings. Both are
written under temporary names and renamed, the JSON last: a fit is complete when its
JSON exists.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from champ3d.body.base import BodyParams
from champ3d.detect.mediapipe_person import PersonDetections
from champ3d.errors import Champ3dInputError
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import BodyFit
from champ3d.io.atomic import atomic_write_path

FORMAT_VERSION = 1


def fit_paths(path: str | Path) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix in (".safetensors", ".json"):
        base = base.with_suffix("")
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def save_fit(path, fit: BodyFit, detections: PersonDetections, metadata: dict | None = None) -> Path:
    tensor_path, json_path = fit_paths(path)
    tensor_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"params.{k}": v.detach().float().contiguous() for k, v in fit.params.to_dict().items()}
    tensors["interpolated"] = torch.from_numpy(fit.interpolated.astype(np.uint8))
    tensors["error_2d"] = torch.from_numpy(fit.error_2d.astype(np.float32))
    for name, array in detections.to_arrays().items():
        tensors[f"detections.{name}"] = torch.from_numpy(np.ascontiguousarray(array).astype(
            np.uint8 if array.dtype == bool else array.dtype))
    with atomic_write_path(tensor_path, overwrite=True) as tmp:
        save_file(tensors, str(tmp))
    meta = {
        "format_version": FORMAT_VERSION,
        "backend": fit.backend,
        "num_frames": fit.num_frames,
        "camera": fit.camera.to_dict(),
        **(metadata or {}),
    }
    with atomic_write_path(json_path, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=2))
    return json_path


def load_fit(path) -> tuple[BodyFit, PersonDetections, dict]:
    tensor_path, json_path = fit_paths(path)
    if not json_path.exists() or not tensor_path.exists():
        raise Champ3dInputError(json_path, "no complete fit here (expected NAME.json and NAME.safetensors)")
    try:
        meta = json.loads(json_path.read_text())
        tensors = load_file(str(tensor_path))
    except (OSError, ValueError) as error:
        raise Champ3dInputError(tensor_path, f"unreadable fit file: {error}") from error
    if meta.get("format_version") != FORMAT_VERSION:
        raise Champ3dInputError(json_path, f"fit format {meta.get('format_version')} is not {FORMAT_VERSION}")
    params = BodyParams.from_dict({k[len("params."):]: v for k, v in tensors.items() if k.startswith("params.")})
    detections = PersonDetections.from_arrays(
        {k[len("detections."):]: v.numpy() for k, v in tensors.items() if k.startswith("detections.")}
    )
    detections.found = detections.found.astype(bool)
    detections.interpolated = detections.interpolated.astype(bool)
    fit = BodyFit(
        params=params,
        camera=CameraIntrinsics(**meta["camera"]),
        interpolated=tensors["interpolated"].numpy().astype(bool),
        error_2d=tensors["error_2d"].numpy(),
        backend=meta["backend"],
    )
    return fit, detections, meta
