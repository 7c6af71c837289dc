"""GuidanceFolder: validation of the guidance layout, on real PNG files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from champ3d.errors import Champ3dInputError
from champ3d.guidance_folder import GuidanceFolder


def _write(folder, kind, count, size=(24, 16), grey=False):
    (folder / kind).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    for i in range(count):
        shape = size if grey else (*size, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / kind / f"{i:04d}.png")


def test_reads_frames_in_numeric_order_and_expands_grey(tmp_path):
    _write(tmp_path, "depth", 12, grey=True)
    _write(tmp_path, "normal", 12)
    (tmp_path / "qc.json").write_text(json.dumps({"driving": {"fps": 29.97, "frame_rate": "30000/1001"}}))
    folder = GuidanceFolder(tmp_path)
    assert folder.types == ("depth", "normal") and len(folder) == 12 and folder.size == (24, 16)
    assert folder.frame_rate == "30000/1001" and folder.reference_image is None
    assert folder.frame_path("depth", 10).name == "0010.png"
    depth = folder.read("depth", 3)
    expected = np.asarray(Image.open(tmp_path / "depth" / "0003.png"))
    assert depth.shape == (24, 16, 3) and all((depth[..., c] == expected).all() for c in range(3))


def test_frame_count_mismatch_names_the_folder_and_counts(tmp_path):
    _write(tmp_path, "depth", 5)
    _write(tmp_path, "semantic_map", 4)
    with pytest.raises(Champ3dInputError, match=r"different frame counts \(depth: 5, semantic_map: 4\)") as info:
        GuidanceFolder(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_requested_type_and_size_mismatch(tmp_path):
    _write(tmp_path, "depth", 3)
    with pytest.raises(Champ3dInputError, match="dwpose: guidance type folder missing"):
        GuidanceFolder(tmp_path, types=("depth", "dwpose"))
    _write(tmp_path, "normal", 3, size=(20, 16))
    with pytest.raises(Champ3dInputError, match="differ in size"):
        GuidanceFolder(tmp_path)


def test_not_a_guidance_folder(tmp_path):
    with pytest.raises(Champ3dInputError, match="no guidance type folder"):
        GuidanceFolder(tmp_path)
    with pytest.raises(Champ3dInputError, match="not found"):
        GuidanceFolder(tmp_path / "absent")
