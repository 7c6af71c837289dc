"""Background plates that rendered bodies are composited over.

A background spec (``champ3d animate --background``) is one of:

* ``inpaint``: the reference photo with the person removed. The person mask (MediaPipe's
  segmentation joined with the fitted body's silhouette) is dilated by
  :data:`DILATION` of the image's longer side and filled with OpenCV's Telea inpainting,
  at the plate's size;
* ``#RRGGBB``: a flat colour (hexadecimal, either case);
* the path of an image file: scaled to cover the plate and centre-cropped (its aspect
  ratio is kept).

Plates are uint8 (H, W, 3) RGB.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np

from champ3d.errors import Champ3dInputError
from champ3d.io.images import IMAGE_SUFFIXES, read_image

#: Person-mask dilation before inpainting, as a fraction of the image's longer side.
DILATION = 0.02
#: Telea inpainting neighbourhood radius, pixels.
INPAINT_RADIUS = 5

_COLOUR = re.compile(r"^#([0-9a-fA-F]{6})$")


@dataclass(frozen=True)
class BackgroundSpec:
    """``kind`` is ``inpaint``, ``colour`` (with ``colour`` an RGB triple) or ``image``
    (with ``image`` its path)."""

    kind: str
    colour: Optional[Tuple[int, int, int]] = None
    image: Optional[Path] = None


def parse_background(text: str, where: str = "--background") -> BackgroundSpec:
    """Read a background spec (module docstring); an image path must name an existing file."""
    if text == "inpaint":
        return BackgroundSpec("inpaint")
    match = _COLOUR.match(text)
    if match:
        value = int(match.group(1), 16)
        return BackgroundSpec("colour", colour=(value >> 16, (value >> 8) & 255, value & 255))
    if text.startswith("#"):
        raise Champ3dInputError(where, f"a colour must be #RRGGBB (six hexadecimal digits), got {text!r}")
    path = Path(text)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise Champ3dInputError(where, f"expected 'inpaint', '#RRGGBB' or an image file ({', '.join(IMAGE_SUFFIXES)}), "
                                       f"got {text!r}")
    if not path.is_file():
        raise Champ3dInputError(path, "background image not found")
    return BackgroundSpec("image", image=path)


def background_plate(spec: BackgroundSpec, size: Tuple[int, int], reference_image: Optional[np.ndarray] = None,
                     person_mask: Optional[np.ndarray] = None) -> np.ndarray:
    """The (H, W, 3) uint8 plate of ``spec`` at ``size`` (H, W). ``inpaint`` needs the
    reference image and its (same-size) boolean person mask."""
    H, W = size
    if spec.kind == "colour":
        return np.broadcast_to(np.asarray(spec.colour, np.uint8), (H, W, 3)).copy()
    if spec.kind == "image":
        return cover(read_image(spec.image), size)
    if reference_image is None or person_mask is None:
        raise ValueError("an inpainted background needs the reference image and its person mask")
    if person_mask.shape != reference_image.shape[:2]:
        raise ValueError(f"person_mask {person_mask.shape} does not match the image {reference_image.shape[:2]}")
    image = cv2.resize(reference_image, (W, H), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(np.asarray(person_mask, np.float32), (W, H), interpolation=cv2.INTER_AREA) > 0
    return remove_person(image, mask)


def remove_person(image: np.ndarray, person_mask: np.ndarray, dilation: float = DILATION,
                  radius: int = INPAINT_RADIUS) -> np.ndarray:
    """``image`` (uint8 RGB) with the dilated ``person_mask`` (bool, same size) inpainted (Telea)."""
    pixels = max(1, round(dilation * max(image.shape[:2])))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    hole = cv2.dilate(person_mask.astype(np.uint8) * 255, kernel)
    if hole.all():
        raise Champ3dInputError(None, "the person covers the whole reference image; no background is left to "
                                      "inpaint from (use --background #RRGGBB or an image)")
    return cv2.inpaint(np.ascontiguousarray(image), hole, radius, cv2.INPAINT_TELEA)


def cover(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``image`` scaled (aspect ratio kept) to cover ``size`` (H, W), centre-cropped."""
    H, W = size
    h, w = image.shape[:2]
    scale = max(H / h, W / w)
    scaled_w, scaled_h = max(W, round(w * scale)), max(H, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(image, (scaled_w, scaled_h), interpolation=interpolation)
    top, left = (scaled_h - H) // 2, (scaled_w - W) // 2
    return np.ascontiguousarray(scaled[top:top + H, left:left + W])
