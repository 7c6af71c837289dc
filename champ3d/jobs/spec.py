"""Job files: a YAML list of cases (reference, driving video, generator, settings) to run.

Shape (read with OmegaConf, so ``${...}`` interpolation works)::

    output: runs/ubc_self          # every case writes output/<name>/, the job output/report.*
    defaults: {generator: mesh, size: 512, max_frames: 48, seed: 0}
    cases:
      - {name: ubc_self, ref: ubc.mp4, driving: ubc.mp4, gt: ubc.mp4}
      - {name: dance_on_photo, ref: photo.jpg, driving: dance.mp4, max_frames: 96}

Every case is ``defaults`` overridden by the case's own keys (the ``align`` and ``fit``
mappings are merged key by key). Relative paths, ``output`` included, are resolved against
the job file's folder. Case keys:

``name`` (required)
    folder name of the case under ``output``: letters, digits, ``.``, ``_``, ``-``; unique.
``ref`` (required), ``ref_frame`` (default 0)
    the reference image; or a video / image folder whose frame ``ref_frame`` is the
    reference (self-reenactment: the clip's first frame).
``driving`` (required)
    driving video, image folder or image.
``gt`` (default none)
    ground-truth video or image folder for evaluation; its first frames are compared
    with the generated ones.
``generator`` (default ``mesh``)
    one of :data:`champ3d.jobs.generators.GENERATORS`. The ``mesh`` generator reads
    ``atlas_size`` (default 1024), ``background`` (``inpaint`` (default), ``#RRGGBB`` or
    an image file), ``camera_path`` (a camera-path YAML file or a shortcut such as
    ``orbit:views=120``; :mod:`render.camera_paths`), ``texture_views`` (a list of more
    photos or videos of the reference person to fuse into its texture) and
    ``texture_every`` (default 10) and ``texture_refine`` (default false: refine each baked
    frame's pose photometrically before fusing; :mod:`champ3d.appearance`), and ``infill_weights`` (a
    Stable Diffusion inpainting pipeline folder for the texture's unseen parts;
    :mod:`texture.learned_infill`; default: the weight-free in-filling). Evaluating a
    self-reenactment whose ``texture_views`` include the ground-truth clip measures
    nothing but the fusion: keep them apart. ``champ`` reads ``weights`` (its weights folder, required) and
    ``generator_config`` (overrides of ``configs/generate/champ.yaml``). A case that sets a
    key only the other generator reads is an error (in ``defaults`` such keys are allowed:
    they serve the cases that use that generator).
``size`` (default 512), ``max_frames`` (default all), ``seed`` (default 0)
    longer side of the guidance and generated frames in pixels; driving frames used;
    the generator's random seed.
``align``
    :class:`champ3d.alignment.AlignSettings` fields (``keep_driver_shape``,
    ``keep_driver_camera``, ``face_like_reference``, ``reground``).
``fit``
    overrides of :class:`champ3d.fitting.fitter.FitSettings` fields for both fits
    (``shape_frames``, ``chunk_size``, ``shape_iterations`` [a, b], ``pose_iterations``
    [a, b], ``learning_rate``, ``robust_sigma``, ``min_hand_score``, ``weights`` {term: w}),
    applied on top of the image defaults for the reference and the video defaults for the
    driving clip.
``protocol`` (default ``ubc_self``), ``profile`` (default: the protocol's)
    evaluation protocol (a name under ``configs/protocols/`` or a YAML path) and metric
    profile, used when ``gt`` is given.
``metric_weights`` (default ``$CHAMP3D_WEIGHTS``)
    folder of the backbone metrics' weight files; metrics whose files are absent are
    reported as needing them.

Any other key, a missing input file, or a value of the wrong type raises
:class:`champ3d.errors.Champ3dInputError` naming the job file, the case and the field,
e.g. ``job.yaml: cases[1] (dance_on_photo).max_frame: unknown key``.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from champ3d.alignment import AlignSettings
from champ3d.errors import Champ3dInputError
from champ3d.fitting.fitter import FitSettings
from champ3d.io.images import IMAGE_SUFFIXES

DEFAULT_PROTOCOL = "ubc_self"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOP_KEYS = ("output", "defaults", "cases")


@dataclass(frozen=True)
class CaseSpec:
    """One validated case; paths are absolute."""

    name: str
    index: int  # position in the job file's ``cases`` list
    ref: Path
    driving: Path
    gt: Optional[Path] = None
    ref_frame: int = 0
    generator: str = "mesh"
    atlas_size: int = 1024
    background: str = "inpaint"
    camera_path: Optional[str] = None
    texture_views: tuple[Path, ...] = ()
    texture_every: int = 10
    texture_refine: bool = False
    infill_weights: Optional[Path] = None
    generator_config: dict = dataclasses.field(default_factory=dict)
    weights: Optional[Path] = None
    size: int = 512
    max_frames: Optional[int] = None
    seed: int = 0
    align: dict = dataclasses.field(default_factory=dict)
    fit: dict = dataclasses.field(default_factory=dict)
    protocol: str = DEFAULT_PROTOCOL
    profile: Optional[str] = None
    metric_weights: Optional[Path] = None

    def align_settings(self) -> AlignSettings:
        return AlignSettings(**self.align)

    def fit_settings(self, base: FitSettings) -> FitSettings:
        """``base`` with this case's ``fit`` overrides (``weights`` merged term by term)."""
        overrides = dict(self.fit)
        if "weights" in overrides:
            overrides["weights"] = {**base.weights, **overrides["weights"]}
        for key in ("shape_iterations", "pose_iterations"):
            if key in overrides:
                overrides[key] = tuple(overrides[key])
        return dataclasses.replace(base, **overrides)


@dataclass(frozen=True)
class JobSpec:
    source: Path  # the job file
    output: Path
    cases: tuple[CaseSpec, ...]


# -- value checkers: (value, where) -> normalised value ---------------------------------------

def _fail(where: str, problem: str):
    raise Champ3dInputError(where, problem)


def _string(value, where):
    if not isinstance(value, str) or not value:
        _fail(where, f"must be a non-empty string, got {value!r}")
    return value


def _integer(minimum: int) -> Callable:
    def check(value, where):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            _fail(where, f"must be an integer >= {minimum}, got {value!r}")
        return value
    return check


def _number(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        _fail(where, f"must be a positive number, got {value!r}")
    return float(value)


def _non_negative(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        _fail(where, f"must be a number >= 0, got {value!r}")
    return float(value)


def _boolean(value, where):
    if not isinstance(value, bool):
        _fail(where, f"must be true or false, got {value!r}")
    return value


def _string_list(value, where):
    if not isinstance(value, list) or not value:
        _fail(where, f"must be a non-empty list of strings, got {value!r}")
    return [_string(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _optional(check: Callable) -> Callable:
    return lambda value, where: None if value is None else check(value, where)


def _pair(value, where):
    if not (isinstance(value, list) and len(value) == 2):
        _fail(where, f"must be a list of two integers [a, b], got {value!r}")
    return [_integer(0)(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _choice(choices: Callable[[], tuple[str, ...]]) -> Callable:
    def check(value, where):
        if value not in choices():
            _fail(where, f"must be one of {list(choices())}, got {value!r}")
        return value
    return check


def _generators() -> tuple[str, ...]:
    from champ3d.jobs.generators import GENERATORS

    return tuple(GENERATORS)


def _profiles() -> tuple[str, ...]:
    from champ3d.eval.registry import PROFILES

    return tuple(PROFILES)


def _mapping(fields: dict[str, Callable]) -> Callable:
    def check(value, where):
        if not isinstance(value, dict):
            _fail(where, f"must be a mapping, got {value!r}")
        return {key: _field(fields, key, item, where) for key, item in value.items()}
    return check


def _mapping_any(value, where):
    """A mapping checked later by its owner (the generator's settings loader)."""
    if not isinstance(value, dict):
        _fail(where, f"must be a mapping, got {value!r}")
    return value


_ALIGN_FIELDS = {f.name: _boolean for f in dataclasses.fields(AlignSettings)}
_FIT_WEIGHT_FIELDS = {name: _non_negative for name in FitSettings().weights}
_FIT_FIELDS = {
    "shape_frames": _integer(1), "chunk_size": _integer(1), "shape_iterations": _pair, "pose_iterations": _pair,
    "learning_rate": _number, "robust_sigma": _number, "min_hand_score": _non_negative,
    "weights": _mapping(_FIT_WEIGHT_FIELDS),
}
_PATH_FIELDS = ("ref", "driving", "gt", "weights", "metric_weights", "infill_weights")
_CASE_FIELDS: dict[str, Callable] = {
    "name": _string,
    "ref": _string,
    "ref_frame": _integer(0),
    "driving": _string,
    "gt": _optional(_string),
    "generator": _choice(_generators),
    "atlas_size": _integer(1),
    "background": _string,
    "camera_path": _optional(_string),
    "texture_views": _string_list,
    "texture_every": _integer(1),
    "texture_refine": _boolean,
    "infill_weights": _optional(_string),
    "generator_config": _mapping_any,
    "weights": _optional(_string),
    "size": _integer(8),
    "max_frames": _optional(_integer(1)),
    "seed": _integer(0),
    "align": _mapping(_ALIGN_FIELDS),
    "fit": _mapping(_FIT_FIELDS),
    "protocol": _string,
    "profile": _optional(_choice(_profiles)),
    "metric_weights": _optional(_string),
}
_REQUIRED = ("name", "ref", "driving")


def _field(fields: dict[str, Callable], key: Any, value: Any, where: str):
    if key not in fields:
        _fail(f"{where}.{key}", f"unknown key (known: {', '.join(fields)})")
    return fields[key](value, f"{where}.{key}")


def _merge(defaults: dict, case: dict) -> dict:
    merged = dict(defaults)
    for key, value in case.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _resolve(base: Path, text: str) -> Path:
    """``text`` as an absolute, normalised path; relative ones start at ``base``."""
    return Path(os.path.abspath(base / os.path.expanduser(text)))


def _case(entry: Any, index: int, defaults: dict, source: Path) -> CaseSpec:
    label = f"{source}: cases[{index}]"
    if not isinstance(entry, dict):
        _fail(label, f"must be a mapping of case keys, got {entry!r}")
    if isinstance(entry.get("name"), str):
        label += f" ({entry['name']})"
    values = {key: _field(_CASE_FIELDS, key, value, label) for key, value in entry.items()}
    values = _merge(defaults, values)
    for key in _REQUIRED:
        if values.get(key) is None:
            _fail(f"{label}.{key}", "missing required key")
    if not _NAME.match(values["name"]):
        _fail(f"{label}.name", "use letters, digits, '.', '_' and '-' only (it names the case folder)")
    base = source.parent
    for key in _PATH_FIELDS:
        if values.get(key) is not None:
            values[key] = _resolve(base, values[key])
            if not values[key].exists():
                _fail(f"{label}.{key}", f"{values[key]} does not exist")
    if values.get("ref_frame", 0) and values["ref"].suffix.lower() in IMAGE_SUFFIXES:
        _fail(f"{label}.ref_frame", f"{values['ref']} is a still image; only a video or folder has frame "
                                    f"{values['ref_frame']}")
    for key in ("weights", "metric_weights", "infill_weights"):
        if values.get(key) is not None and not values[key].is_dir():
            _fail(f"{label}.{key}", f"{values[key]} is not a folder")
    background = values.get("background", "inpaint")
    if background != "inpaint" and not background.startswith("#"):  # an image file
        values["background"] = str(_resolve(base, background))
    if (values.get("camera_path") or "").endswith((".yaml", ".yml")):
        values["camera_path"] = str(_resolve(base, values["camera_path"]))
    if "texture_views" in values:
        values["texture_views"] = tuple(_resolve(base, text) for text in values["texture_views"])
        for i, path in enumerate(values["texture_views"]):
            if not path.exists():
                _fail(f"{label}.texture_views[{i}]", f"{path} does not exist")
    protocol = values.get("protocol", DEFAULT_PROTOCOL)
    if protocol.endswith((".yaml", ".yml")):
        values["protocol"] = str(_resolve(base, protocol))
    _check_protocol(values, label)
    case = CaseSpec(index=index, **values)
    _check_generator(case, set(entry), label)
    return case


def _check_generator(case: CaseSpec, given: set[str], label: str) -> None:
    from champ3d.jobs.generators import GENERATORS, check_generator_keys

    check_generator_keys(case.generator, given, label)
    GENERATORS[case.generator].settings(case, label)


def _check_protocol(values: dict, label: str) -> None:
    if values.get("gt") is None:
        return
    from champ3d.eval.protocol import load_protocol

    try:
        load_protocol(values.get("protocol", DEFAULT_PROTOCOL))
    except Champ3dInputError as error:
        _fail(f"{label}.protocol", str(error))


def parse_job(data: Any, source: Path) -> JobSpec:
    """Validate a loaded job document; ``source`` is the job file (paths resolve against its folder)."""
    source = Path(os.path.abspath(source))
    where = str(source)
    if not isinstance(data, dict):
        _fail(where, "a job file holds a mapping with 'output', 'defaults' and 'cases'")
    for key in data:
        if key not in _TOP_KEYS:
            _fail(f"{where}: {key}", f"unknown key (known: {', '.join(_TOP_KEYS)})")
    output = _string(data.get("output"), f"{where}: output")
    raw_defaults = data.get("defaults") or {}
    if not isinstance(raw_defaults, dict):
        _fail(f"{where}: defaults", f"must be a mapping of case keys, got {raw_defaults!r}")
    defaults = {key: _field(_CASE_FIELDS, key, value, f"{where}: defaults") for key, value in raw_defaults.items()}
    if "name" in defaults:
        _fail(f"{where}: defaults.name", "every case needs its own name")
    cases = data.get("cases")
    if not isinstance(cases, list) or not cases:
        _fail(f"{where}: cases", "must be a non-empty list of cases")
    specs = tuple(_case(entry, index, defaults, source) for index, entry in enumerate(cases))
    seen: dict[str, int] = {}
    for spec in specs:
        if spec.name in seen:
            _fail(f"{where}: cases[{spec.index}] ({spec.name}).name", f"same name as cases[{seen[spec.name]}]")
        seen[spec.name] = spec.index
    return JobSpec(source=source, output=_resolve(source.parent, output), cases=specs)


def load_job(path: os.PathLike | str) -> JobSpec:
    """Read and validate a job file."""
    path = Path(path)
    if not path.is_file():
        _fail(str(path), "job file does not exist")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (OmegaConfBaseException, yaml.YAMLError, ValueError, OSError) as error:
        _fail(str(path), f"cannot read the job file: {error}")
    return parse_job(data, path)


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N. Shard K of N runs the cases whose index in the
    job file (counting from 0) is K modulo N."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise Champ3dInputError("--shard", f"must be K/N with 0 <= K < N, got {text!r}")
    return int(match.group(1)), int(match.group(2))
