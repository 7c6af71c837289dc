"""Evaluation protocols: YAML files under ``configs/protocols/`` describing what to compare.

Keys (every other key is an error naming the file and the key):

``name`` (str, required), ``split`` (str, required), ``profile`` (``legacy`` | ``clean``,
required), ``metrics`` (list of generic metric names, required; see
:mod:`champ3d.eval.registry`), ``description``, ``dataset``, ``notes`` (str),
``reference_frame`` (``first`` | ``none``: which ground-truth frame conditioned the
generation; recorded), ``frames`` {``start``, ``stride``}: evaluated frame indices,
``resize`` {``size`` [height, width], ``crop`` center|stretch, ``filter``
bicubic|bilinear|lanczos|box} or null for native size, ``clips`` {``length``, ``stride``}:
clip windows of the video metrics, ``bootstrap`` {``samples``, ``distribution_samples``,
``confidence``, ``seed``}, ``orbit`` {``views``, ``step_deg``}: a turntable protocol,
every video must have exactly ``views`` frames, frame i seen from i * step_deg degrees.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from champ3d import CONFIG_DIR
from champ3d.errors import Champ3dInputError
from champ3d.eval.features import ClipSampling
from champ3d.eval.frames import FrameResize, FrameSelection
from champ3d.eval.registry import PROFILES, resolve_metrics
from champ3d.eval.stats import BootstrapConfig

PROTOCOL_DIR = CONFIG_DIR / "protocols"


@dataclass(frozen=True)
class Orbit:
    views: int
    step_deg: float


@dataclass(frozen=True)
class Protocol:
    name: str
    split: str
    profile: str
    metrics: tuple[str, ...]
    description: str = ""
    dataset: str = ""
    notes: str = ""
    reference_frame: str = "first"
    frames: FrameSelection = FrameSelection()
    resize: Optional[FrameResize] = None
    clips: ClipSampling = ClipSampling(16, 1)
    bootstrap: BootstrapConfig = BootstrapConfig()
    orbit: Optional[Orbit] = None
    source: Optional[str] = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


_TOP_KEYS = {"name", "split", "profile", "metrics", "description", "dataset", "notes", "reference_frame",
             "frames", "resize", "clips", "bootstrap", "orbit"}
_REQUIRED = ("name", "split", "profile", "metrics")
_SECTIONS = {
    "frames": {"start": int, "stride": int},
    "resize": {"size": list, "crop": str, "filter": str},
    "clips": {"length": int, "stride": int},
    "bootstrap": {"samples": int, "distribution_samples": int, "confidence": float, "seed": int},
    "orbit": {"views": int, "step_deg": float},
}
_CHOICES = {"reference_frame": ("first", "none"), "resize.crop": ("center", "stretch"),
            "resize.filter": ("bicubic", "bilinear", "lanczos", "box")}


def _section(data: Any, name: str, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Champ3dInputError(where, f"'{name}' must be a mapping, got {type(data).__name__}")
    allowed = _SECTIONS[name]
    for key, value in data.items():
        if key not in allowed:
            raise Champ3dInputError(where, f"unknown key '{name}.{key}' (allowed: {', '.join(sorted(allowed))})")
        kind = allowed[key]
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise Champ3dInputError(where, f"'{name}.{key}' must be {kind.__name__}, got {value!r}")
        choices = _CHOICES.get(f"{name}.{key}")
        if choices and value not in choices:
            raise Champ3dInputError(where, f"'{name}.{key}' must be one of {choices}, got {value!r}")
    return data


def _positive(value: int, key: str, where: str, allow_zero: bool = False) -> int:
    if value < 0 or (value == 0 and not allow_zero):
        raise Champ3dInputError(where, f"'{key}' must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def parse_protocol(data: Any, where: str) -> Protocol:
    """Validate a loaded YAML document; ``where`` names its file in errors."""
    if not isinstance(data, dict):
        raise Champ3dInputError(where, "protocol file must hold a mapping")
    for key in data:
        if key not in _TOP_KEYS:
            raise Champ3dInputError(where, f"unknown key '{key}' (allowed: {', '.join(sorted(_TOP_KEYS))})")
    for key in _REQUIRED:
        if key not in data:
            raise Champ3dInputError(where, f"missing required key '{key}'")
    for key in ("name", "split", "profile", "description", "dataset", "notes", "reference_frame"):
        if key in data and not isinstance(data[key], str):
            raise Champ3dInputError(where, f"'{key}' must be a string, got {data[key]!r}")
    if data.get("reference_frame", "first") not in _CHOICES["reference_frame"]:
        raise Champ3dInputError(where, f"'reference_frame' must be one of {_CHOICES['reference_frame']}")
    metrics = data["metrics"]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise Champ3dInputError(where, "'metrics' must be a non-empty list of metric names")
    if len(set(metrics)) != len(metrics):
        raise Champ3dInputError(where, f"'metrics' lists a metric twice: {metrics}")
    if data["profile"] not in PROFILES:
        raise Champ3dInputError(where, f"'profile' must be one of {sorted(PROFILES)}, got {data['profile']!r}")
    resolve_metrics(tuple(metrics), data["profile"], where)

    fields: dict[str, Any] = {k: data[k] for k in ("name", "split", "profile", "description", "dataset", "notes",
                                                    "reference_frame") if k in data}
    fields["metrics"] = tuple(metrics)
    if "frames" in data:
        frames = _section(data["frames"], "frames", where)
        fields["frames"] = FrameSelection(_positive(frames.get("start", 0), "frames.start", where, allow_zero=True),
                                          _positive(frames.get("stride", 1), "frames.stride", where))
    if data.get("resize") is not None:
        resize = _section(data["resize"], "resize", where)
        size = resize.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise Champ3dInputError(where, f"'resize.size' must be [height, width] positive integers, got {size!r}")
        fields["resize"] = FrameResize(size[0], size[1], resize.get("crop", "center"), resize.get("filter", "bicubic"))
    if "clips" in data:
        clips = _section(data["clips"], "clips", where)
        fields["clips"] = ClipSampling(_positive(clips.get("length", 16), "clips.length", where),
                                       _positive(clips.get("stride", 1), "clips.stride", where))
    if "bootstrap" in data:
        boot = _section(data["bootstrap"], "bootstrap", where)
        default = BootstrapConfig()
        confidence = float(boot.get("confidence", default.confidence))
        if not 0.0 < confidence < 1.0:
            raise Champ3dInputError(where, f"'bootstrap.confidence' must be in (0, 1), got {confidence}")
        fields["bootstrap"] = BootstrapConfig(
            _positive(boot.get("samples", default.samples), "bootstrap.samples", where, allow_zero=True),
            _positive(boot.get("distribution_samples", default.distribution_samples),
                      "bootstrap.distribution_samples", where, allow_zero=True),
            confidence, boot.get("seed", default.seed))
    if data.get("orbit") is not None:
        orbit = _section(data["orbit"], "orbit", where)
        if set(orbit) != {"views", "step_deg"}:
            raise Champ3dInputError(where, "'orbit' needs both 'views' and 'step_deg'")
        fields["orbit"] = Orbit(_positive(orbit["views"], "orbit.views", where), float(orbit["step_deg"]))
    return Protocol(**fields, source=where)


def load_protocol(protocol: str | os.PathLike) -> Protocol:
    """Load by name (``configs/protocols/<name>.yaml``) or from a YAML path."""
    path = Path(protocol)
    if path.suffix not in (".yaml", ".yml"):
        path = PROTOCOL_DIR / f"{protocol}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))
            raise Champ3dInputError(path, f"no protocol named {str(protocol)!r}; known: {known}")
    if not path.is_file():
        raise Champ3dInputError(path, "protocol file does not exist")
    with open(path, encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise Champ3dInputError(path, f"invalid YAML: {exc}") from exc
    return parse_protocol(data, str(path))
