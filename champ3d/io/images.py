"""Still images: one photo, or a folder of frames.

Every image is turned upright with its EXIF orientation and converted to ``uint8``
RGB. Conversions that change what the file holds are done, never refused, and
announced with :func:`warnings.warn`:

* grayscale (1-bit, 8-bit, 16-bit) is copied into the three channels; 16-bit values
  are scaled to 8 bits (``round(v / 257)``);
* transparency is composited over **white**: a cut-out person keeps a clean white
  background like the studio references, whereas dropping alpha would expose whatever
  colour the file stores under transparent pixels (often black or noise). An alpha
  channel that is fully opaque is dropped silently;
* CMYK and other colour models are converted with Pillow's ``convert("RGB")``, without
  colour management.

Palette images are expanded silently. Images are never resized: a portrait photo 4000
pixels wide and 6000 high reads as a (6000, 4000, 3) array (72 MB); scaling is up to the
caller. Floating-point and 32-bit
images, unreadable and damaged files raise :class:`champ3d.errors.Champ3dInputError`.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from champ3d.errors import Champ3dInputError
from champ3d.io.source import FrameSource

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
"""Suffixes (compared case-insensitively) read as images; other files in a folder are ignored."""

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)


def read_image(path: os.PathLike | str) -> np.ndarray:
    """Read one image as an upright ``uint8`` ``(H, W, 3)`` RGB array (see the module notes)."""
    path = Path(path)
    rgb, conversion = _load_rgb(path)
    if conversion:
        warnings.warn(f"{path}: {conversion}", stacklevel=2)
    return rgb


class ImageFrames(FrameSource):
    """A single image, or the images of a folder in natural order (``2.png`` before ``10.png``).

    A folder's files with a suffix in :data:`IMAGE_SUFFIXES` are its frames; hidden
    files, sub-folders and other files are ignored. All frames must have the same upright
    size, which is checked from the file headers when the source is opened. Images have
    no frame rate: ``frame_rate`` and ``fps`` are None and the caller picks one.
    Conversion warnings are given once per kind of conversion and iteration.
    """

    def __init__(self, path: os.PathLike | str, max_frames: Optional[int] = None):
        self.path = Path(path)
        files = _list_images(self.path) if self.path.is_dir() else [self.path]
        if max_frames is not None:
            files = files[:max_frames]
        self._files: List[Path] = files
        self.size = _upright_size(files[0])
        for file in files[1:]:
            size = _upright_size(file)
            if size != self.size:
                raise Champ3dInputError(
                    file, f"image size {size} (H, W) differs from {self.size} of the first frame {files[0].name}"
                )
        self.frame_rate = None
        self.num_frames = len(files)
        self.num_frames_exact = True

    @property
    def files(self) -> Sequence[Path]:
        """The image files, in frame order."""
        return tuple(self._files)

    def __iter__(self) -> Iterator[np.ndarray]:
        warned = set()
        for file in self._files:
            rgb, conversion = _load_rgb(file)
            if rgb.shape[:2] != self.size:
                raise Champ3dInputError(file, f"image size changed to {rgb.shape[:2]} while reading")
            if conversion and conversion not in warned:
                warned.add(conversion)
                where = f"{self.path} (first: {file.name})" if file != self.path else str(file)
                warnings.warn(f"{where}: {conversion}", stacklevel=2)
            yield rgb


def natural_sort_key(name: str) -> Tuple:
    """Sort key that orders digit runs by value: ``frame2`` < ``frame10``; ties break by the plain name."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts), name


def _list_images(folder: Path) -> List[Path]:
    files = [
        p for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    ]
    if not files:
        raise Champ3dInputError(folder, f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(files, key=lambda p: natural_sort_key(p.name))


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise Champ3dInputError(path, "file does not exist")
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise Champ3dInputError(path, "not a readable image (unknown or damaged format)") from None
    except (OSError, Image.DecompressionBombError) as err:
        raise Champ3dInputError(path, f"cannot open image: {err}") from err


def _upright_size(path: Path) -> Tuple[int, int]:
    """(H, W) after EXIF orientation, from the header alone."""
    with _open(path) as img:
        width, height = img.size
        if img.getexif().get(_EXIF_ORIENTATION, 1) in _TRANSPOSED_ORIENTATIONS:
            width, height = height, width
    return height, width


def _load_rgb(path: Path) -> Tuple[np.ndarray, Optional[str]]:
    """Decode ``path`` to upright uint8 RGB; also return a note on any lossy conversion."""
    with _open(path) as img:
        try:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # no second whole-image copy
        except (OSError, SyntaxError, ValueError) as err:
            raise Champ3dInputError(path, f"damaged or truncated image: {err}") from err
        return _to_rgb(img, path)


_BAND_ROWS = 256


def _pixels(img: Image.Image) -> np.ndarray:
    """A writable numpy copy of ``img``'s pixels.

    Copied in bands of rows: ``np.asarray`` on a whole image goes through a byte string of
    the whole image (and a read-only array over it), which would add two image-sized
    buffers to the peak memory of reading a large photo.
    """
    width, height = img.size
    band = lambda top: np.asarray(img.crop((0, top, width, min(height, top + _BAND_ROWS))))
    first = band(0)
    pixels = np.empty((height,) + first.shape[1:], first.dtype)
    pixels[: len(first)] = first
    for top in range(_BAND_ROWS, height, _BAND_ROWS):
        pixels[top : top + _BAND_ROWS] = band(top)
    return pixels


def _to_rgb(img: Image.Image, path: Path) -> Tuple[np.ndarray, Optional[str]]:
    mode = img.mode
    if mode == "RGB":
        return _pixels(img), None
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        return _to_rgb(img, path)
    if mode in ("RGBA", "RGBa", "PA", "LA", "La"):
        note = "grayscale image converted to RGB" if mode in ("LA", "La") else None
        rgba = _pixels(img.convert("RGBA"))
        alpha = rgba[..., 3:].astype(np.uint16)
        if alpha.min() == 255:
            return np.ascontiguousarray(rgba[..., :3]), note
        rgb = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
        return rgb.astype(np.uint8), "transparent pixels composited over white (alpha removed)"
    if mode in ("1", "L"):
        gray = _pixels(img.convert("L"))
        return np.repeat(gray[..., None], 3, axis=2), "grayscale image converted to RGB"
    if mode.startswith("I;16") or mode == "I":
        values = _pixels(img).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise Champ3dInputError(path, f"32-bit integer pixels outside 0..65535 are not supported (mode {mode})")
        gray = ((values + 128) // 257).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2), "16-bit grayscale image converted to 8-bit RGB"
    if mode == "F":
        raise Champ3dInputError(path, "floating-point images are not supported (mode F)")
    return _pixels(img.convert("RGB")), f"{mode} image converted to RGB without colour management"
