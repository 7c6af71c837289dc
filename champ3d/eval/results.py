"""Per-video evaluation results: what :func:`champ3d.eval.evaluate` measures for one video and
what ``champ3d report`` aggregates.

One result is two files in a ``videos/`` folder of an evaluation's output:

- ``<video_id>.eval.json``: labels (method, protocol record, profile), the metric
  descriptions, the per-frame values of the frame metrics at the evaluated frames, the
  per-video values of the video metrics, the metrics that could not run and why, the
  run record (paths and sha256 of both videos, the fits and guidance used) and provenance
  (package versions, weight hashes, device, time);
- ``<video_id>.eval.safetensors``: float64 feature rows of the distribution metrics,
  ``<metric>.pred`` and ``<metric>.gt`` (only when the evaluation had such metrics).

The JSON is written last (atomically), so a result is complete when its JSON exists. Floats
are stored as JSON numbers (``NaN`` and ``Infinity`` as Python's ``json`` writes them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from champ3d.errors import Champ3dInputError
from champ3d.eval.report import atomic_write_text
from champ3d.io.atomic import atomic_write_path

RESULT_SUFFIX = ".eval.json"
FEATURES_SUFFIX = ".eval.safetensors"
FORMAT_VERSION = 1


@dataclass
class VideoResult:
    video_id: str
    method: str
    protocol: dict[str, Any]  # Protocol.record()
    profile: str
    metrics: dict[str, dict]  # computed metrics: name -> MetricSpec.describe()
    unavailable: dict[str, dict]  # name -> describe() + "reason"
    frame_indices: list[int]
    frame_names: list[str]
    n_clips: int
    frame_values: dict[str, np.ndarray] = field(default_factory=dict)
    video_values: dict[str, float] = field(default_factory=dict)
    features: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (pred, gt)
    record: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    run_info: dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None  # the JSON file, once saved or loaded

    @property
    def split(self) -> str:
        return self.protocol["split"]

    @property
    def metric_order(self) -> list[str]:
        """Computed and unavailable metrics in the protocol's order."""
        return list(self.record["metric_order"])

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION, "video_id": self.video_id, "method": self.method,
            "protocol": self.protocol, "profile": self.profile, "metrics": self.metrics,
            "unavailable": self.unavailable,
            "frames": {"index": self.frame_indices, "name": self.frame_names}, "n_clips": self.n_clips,
            "frame_values": {k: v.tolist() for k, v in self.frame_values.items()},
            "video_values": self.video_values,
            "features": {k: {"pred_rows": len(p), "gt_rows": len(g)} for k, (p, g) in self.features.items()},
            "record": self.record, "provenance": self.provenance, "run_info": self.run_info,
        }

    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.features:
            tensors = {}
            for name, (pred, gt) in self.features.items():
                tensors[f"{name}.pred"] = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float64))
                tensors[f"{name}.gt"] = torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float64))
            with atomic_write_path(folder / f"{self.video_id}{FEATURES_SUFFIX}", overwrite=True) as tmp:
                save_file(tensors, str(tmp))
        self.path = atomic_write_text(folder / f"{self.video_id}{RESULT_SUFFIX}",
                                      json.dumps(self.to_json(), indent=1) + "\n")
        return self.path

    @classmethod
    def load(cls, path: Path) -> "VideoResult":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise Champ3dInputError(path, f"unreadable evaluation result: {error}") from error
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise Champ3dInputError(path, f"not a champ3d evaluation result of format {FORMAT_VERSION}")
        features = {}
        if data["features"]:
            feature_path = path.with_name(path.name[: -len(RESULT_SUFFIX)] + FEATURES_SUFFIX)
            try:
                tensors = load_file(str(feature_path))
                features = {name: (tensors[f"{name}.pred"].numpy(), tensors[f"{name}.gt"].numpy())
                            for name in data["features"]}
            except (OSError, KeyError, ValueError, SafetensorError) as error:
                raise Champ3dInputError(feature_path, f"feature rows of {path.name} unreadable: {error}") from error
        return cls(
            video_id=data["video_id"], method=data["method"], protocol=data["protocol"], profile=data["profile"],
            metrics=data["metrics"], unavailable=data["unavailable"], frame_indices=data["frames"]["index"],
            frame_names=data["frames"]["name"], n_clips=data["n_clips"],
            frame_values={k: np.asarray(v, dtype=np.float64) for k, v in data["frame_values"].items()},
            video_values={k: float(v) for k, v in data["video_values"].items()}, features=features,
            record=data["record"], provenance=data["provenance"], run_info=data["run_info"], path=path,
        )


def find_results(run_dir: Path) -> list[Path]:
    """Every result JSON under ``run_dir`` (recursively), sorted."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise Champ3dInputError(run_dir, "run folder does not exist")
    return sorted(run_dir.rglob(f"*{RESULT_SUFFIX}"))
