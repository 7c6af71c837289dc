"""Camera paths around a body: orbits, swings and keyframed flights, as per-view extrinsics.

Conventions (owned here). A path moves the *reference camera* (the camera of the
reference photo, world-to-camera ``R0``, ``T0`` in the axes of :mod:`render.cameras`)
rigidly about the *body centre* ``c`` (a world point given by the caller, e.g. the root
joint; for a moving body one per frame), so every view frames the body as the reference
photo does: ``c`` stays on the same pixel, and the camera keeps its roll. A view is three
numbers:

* **azimuth** (degrees): rotation about the vertical axis through ``c``. *Up* is the
  reference camera's -y axis (image up), so the axis is ``R0.T @ (0, -1, 0)``. The
  rotation is right-handed about up: positive azimuth moves the camera toward the
  reference camera's +x (image right), counter-clockwise seen from above; at +90 degrees
  it sees the body from the reference view's right-hand side (a person facing the camera
  shows their left side). 180 is the back view.
* **elevation** (degrees, -90..90): rotation about the horizontal axis through ``c`` that
  is perpendicular to the reference viewing direction, applied before the azimuth;
  positive raises the camera, which then looks down at the body.
* **distance**: factor on the reference camera's distance to ``c``.

Azimuth 0, elevation 0, distance 1 is the reference camera itself. With ``Q`` the rotation
(``Q = rot(up, azimuth) @ rot(side, -elevation)``, ``side = up x (o - c)`` normalised, ``o``
the reference camera centre), a view's camera centre is ``c + distance * Q (o - c)`` and its
rotation ``R0 @ Q.T``.

Path specs (YAML files read with OmegaConf, or command-line shortcuts such as
``orbit:views=120,elevation=10``; every other key is an error naming the file and the key):

* ``type: orbit`` -- ``views`` (30), ``azimuth_start`` (0), ``azimuth_end`` (360),
  ``elevation`` (0), ``distance`` (1). A range spanning a whole number of turns is closed:
  ``views`` steps of ``(end - start) / views`` (30 views every 12 degrees, 3DHM's
  turntable); any other range includes both ends.
* ``type: swing`` -- the camera swings about ``azimuth_centre`` (0):
  ``azimuth = azimuth_centre + amplitude * sin(2 pi cycles i / views)``; ``views`` (30),
  ``amplitude`` (30), ``cycles`` (1), ``elevation`` (0), ``distance`` (1).
* ``type: keyframes`` -- ``views`` (30) and ``keyframes``: a list of {``azimuth`` (0),
  ``elevation`` (0), ``distance`` (1), ``time``}; times are optional (default 0, 1, 2, ...)
  and must increase. The views sample the time span evenly, ends included; azimuth,
  elevation and log distance follow a Catmull-Rom spline through the keyframes (Hermite
  segments with finite-difference tangents, so uneven times stay smooth). The camera's
  orientation follows from the rigid motion, so no separate rotation interpolation is
  needed.

A video longer than ``views`` frames runs through the path again: frame ``k`` uses view
``k % views`` (:meth:`CameraPath.view_of_frame`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from champ3d.errors import Champ3dInputError

#: The default path of ``champ3d orbit``: 3DHM's turntable, 30 views every 12 degrees.
DEFAULT_VIEWS = 30


@dataclass(frozen=True)
class Keyframe:
    azimuth: float = 0.0
    elevation: float = 0.0
    distance: float = 1.0
    time: Optional[float] = None


@dataclass(frozen=True)
class CameraPath:
    """A validated path spec (see the module docstring). ``type`` is ``orbit``, ``swing`` or
    ``keyframes``; fields that do not belong to the type keep their defaults."""

    type: str = "orbit"
    views: int = DEFAULT_VIEWS
    elevation: float = 0.0
    distance: float = 1.0
    azimuth_start: float = 0.0
    azimuth_end: float = 360.0
    azimuth_centre: float = 0.0
    amplitude: float = 30.0
    cycles: float = 1.0
    keyframes: Tuple[Keyframe, ...] = field(default_factory=tuple)

    def angles(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per view: azimuth (degrees), elevation (degrees) and distance factor, each (views,)."""
        i = np.arange(self.views, dtype=np.float64)
        ones = np.ones(self.views)
        if self.type == "orbit":
            span = self.azimuth_end - self.azimuth_start
            turns = span / 360.0
            closed = span != 0 and turns == round(turns)
            step = span / self.views if closed else span / max(self.views - 1, 1)
            return self.azimuth_start + step * i, self.elevation * ones, self.distance * ones
        if self.type == "swing":
            azimuth = self.azimuth_centre + self.amplitude * np.sin(2 * np.pi * self.cycles * i / self.views)
            return azimuth, self.elevation * ones, self.distance * ones
        return _keyframe_angles(self.keyframes, self.views)

    def view_of_frame(self, frame):
        """The view video frame(s) ``frame`` (int or integer array) use: the path repeats
        every ``views`` frames."""
        return frame % self.views

    def extrinsics(self, centre, R0=None, T0=None) -> Tuple[np.ndarray, np.ndarray]:
        """(views, 3, 3) rotations and (views, 3) translations (world to camera) of the path
        around ``centre``, starting from the reference camera ``R0`` (identity), ``T0`` (0)."""
        return view_extrinsics(*self.angles(), centre=centre, R0=R0, T0=T0)


def _keyframe_angles(keyframes: Sequence[Keyframe], views: int):
    times = np.array([k.time if k.time is not None else i for i, k in enumerate(keyframes)], np.float64)
    points = np.array([[k.azimuth, k.elevation, math.log(k.distance)] for k in keyframes], np.float64)
    if len(keyframes) == 1:
        samples = np.repeat(points, views, axis=0)
    else:
        samples = catmull_rom(times, points, np.linspace(times[0], times[-1], views))
    return samples[:, 0], samples[:, 1], np.exp(samples[:, 2])


def catmull_rom(times: np.ndarray, points: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Interpolate ``points`` (K, D) given at increasing ``times`` (K,), K >= 2, at times
    ``at`` (N,) in their span: cubic Hermite segments whose tangents are the central
    differences (one-sided at the ends); the curve passes through every point."""
    tangents = np.gradient(points, times, axis=0, edge_order=1)
    tangents[1:-1] = (points[2:] - points[:-2]) / (times[2:] - times[:-2])[:, None]
    segment = np.clip(np.searchsorted(times, at, side="right") - 1, 0, len(times) - 2)
    t0, t1 = times[segment], times[segment + 1]
    h = (t1 - t0)[:, None]
    s = ((at - t0) / (t1 - t0))[:, None]
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    return (h00 * points[segment] + h10 * h * tangents[segment] + h01 * points[segment + 1]
            + h11 * h * tangents[segment + 1])


def rotation_about(axis: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """(N, 3, 3) right-handed rotations by ``degrees`` (N,) about unit axes (3,) or (N, 3)."""
    angle = np.radians(np.asarray(degrees, np.float64))
    x, y, z = np.broadcast_to(np.asarray(axis, np.float64), angle.shape + (3,)).T
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], 1)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def view_extrinsics(azimuth, elevation, distance, *, centre, R0=None, T0=None) -> Tuple[np.ndarray, np.ndarray]:
    """World-to-camera (N, 3, 3) rotations and (N, 3) translations of the views
    ``azimuth``, ``elevation`` (degrees) and ``distance`` (factor), each (N,), of the
    reference camera ``R0``, ``T0`` moved about ``centre``: one point (3,), or one per
    view (N, 3) for a body that moves (module docstring)."""
    R0 = np.eye(3) if R0 is None else np.asarray(R0, np.float64)
    T0 = np.zeros(3) if T0 is None else np.asarray(T0, np.float64)
    azimuth, elevation, distance = (np.asarray(a, np.float64).reshape(-1) for a in (azimuth, elevation, distance))
    centre = np.broadcast_to(np.asarray(centre, np.float64), azimuth.shape + (3,))
    offset = -R0.T @ T0 - centre  # from the body centre to the reference camera
    up = R0.T @ np.array([0.0, -1.0, 0.0])
    side = np.cross(up, offset)
    length = np.linalg.norm(side, axis=-1, keepdims=True)
    if np.any(length < 1e-9 * np.maximum(np.linalg.norm(offset, axis=-1, keepdims=True), 1e-12)):
        raise ValueError("the reference camera looks straight down or up at the body centre; no orbit is defined")
    Q = rotation_about(up, azimuth) @ rotation_about(side / length, -elevation)
    camera_centre = centre + distance[:, None] * np.einsum("nij,nj->ni", Q, offset)
    R = np.einsum("ij,nkj->nik", R0, Q)
    T = -np.einsum("nij,nj->ni", R, camera_centre)
    return R.astype(np.float32), T.astype(np.float32)


# -- specs: files, shortcuts and validation ------------------------------------------------

_COMMON = ("type", "views", "elevation", "distance")
_KEYS = {
    "orbit": _COMMON + ("azimuth_start", "azimuth_end"),
    "swing": _COMMON + ("azimuth_centre", "amplitude", "cycles"),
    "keyframes": ("type", "views", "keyframes"),
}
_KEYFRAME_KEYS = tuple(f.name for f in fields(Keyframe))


def parse_camera_path(data, where: str) -> CameraPath:
    """A :class:`CameraPath` from a spec mapping; errors name ``where`` and the key."""
    if not isinstance(data, dict):
        raise Champ3dInputError(where, f"a camera path must be a mapping of keys, got {type(data).__name__}")
    kind = data.get("type", "orbit")
    if kind not in _KEYS:
        raise Champ3dInputError(where, f"type: must be one of {', '.join(_KEYS)}, got {kind!r}")
    for key in data:
        if key not in _KEYS[kind]:
            raise Champ3dInputError(where, f"unknown key {key!r} for a {kind} path (allowed: {', '.join(_KEYS[kind])})")
    values = {"type": kind}
    views = data.get("views", DEFAULT_VIEWS)
    if isinstance(views, bool) or not isinstance(views, int) or views < 1:
        raise Champ3dInputError(where, f"views: must be a positive integer, got {views!r}")
    values["views"] = views
    for key in _KEYS[kind]:
        if key in ("type", "views", "keyframes") or key not in data:
            continue
        values[key] = _number(data[key], where, key)
    _check_view(values, where, "")
    if kind == "swing" and values.get("cycles", 1.0) <= 0:
        raise Champ3dInputError(where, f"cycles: must be positive, got {values['cycles']}")
    if kind == "keyframes":
        values["keyframes"] = _keyframes(data.get("keyframes"), where)
    return CameraPath(**values)


def _number(value, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Champ3dInputError(where, f"{key}: must be a finite number, got {value!r}")
    return float(value)


def _check_view(values: dict, where: str, prefix: str) -> None:
    if not -90.0 <= values.get("elevation", 0.0) <= 90.0:
        raise Champ3dInputError(where, f"{prefix}elevation: must lie in [-90, 90] degrees, got {values['elevation']}")
    if values.get("distance", 1.0) <= 0:
        raise Champ3dInputError(where, f"{prefix}distance: must be positive, got {values['distance']}")


def _keyframes(items, where: str) -> Tuple[Keyframe, ...]:
    if not isinstance(items, list) or not items:
        raise Champ3dInputError(where, "keyframes: must be a non-empty list of {azimuth, elevation, distance, time}")
    frames = []
    for i, item in enumerate(items):
        prefix = f"keyframes[{i}]."
        if not isinstance(item, dict):
            raise Champ3dInputError(where, f"keyframes[{i}]: must be a mapping, got {type(item).__name__}")
        for key in item:
            if key not in _KEYFRAME_KEYS:
                raise Champ3dInputError(where, f"{prefix}{key}: unknown key (allowed: {', '.join(_KEYFRAME_KEYS)})")
        values = {key: _number(value, where, prefix + key) for key, value in item.items() if value is not None}
        _check_view(values, where, prefix)
        frames.append(Keyframe(**values))
    timed = [k.time is not None for k in frames]
    if any(timed) and not all(timed):
        raise Champ3dInputError(where, "keyframes: give a time to every keyframe or to none")
    times = [k.time if k.time is not None else i for i, k in enumerate(frames)]
    if any(b <= a for a, b in zip(times, times[1:])):
        raise Champ3dInputError(where, f"keyframes: times must increase, got {times}")
    return tuple(frames)


def load_camera_path(path: Union[str, os.PathLike]) -> CameraPath:
    """Read a camera-path YAML file (module docstring)."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path)
    if not path.is_file():
        raise Champ3dInputError(path, "camera path file not found")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (OmegaConfBaseException, yaml.YAMLError, ValueError, OSError) as error:
        raise Champ3dInputError(path, f"not a readable YAML file ({str(error).splitlines()[0]})") from error
    return parse_camera_path(data, str(path))


def camera_path_from_text(text: str, where: str = "--camera-path") -> CameraPath:
    """A path from a command-line value: a YAML file, or a shortcut ``TYPE`` or
    ``TYPE:key=value,key=value`` (e.g. ``orbit:views=120,elevation=10``; values are read
    as YAML scalars)."""
    if text.endswith((".yaml", ".yml")) or os.sep in text or Path(text).is_file():
        return load_camera_path(text)
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    kind, _, settings = text.partition(":")
    items = [item for item in settings.split(",") if item.strip()]
    for item in items:
        if "=" not in item:
            raise Champ3dInputError(where, f"expected TYPE:key=value,..., got {text!r}")
    try:
        data = OmegaConf.to_container(OmegaConf.from_dotlist([f"type={kind}"] + [i.strip() for i in items]))
    except OmegaConfBaseException as error:
        raise Champ3dInputError(where, f"cannot read {text!r} ({str(error).splitlines()[0]})") from error
    return parse_camera_path(data, where)
