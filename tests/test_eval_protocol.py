"""Protocol configs: the shipped files and the validation of user-written ones."""
from __future__ import annotations

import pytest
import yaml

from champ3d.errors import Champ3dInputError
from champ3d.eval import load_protocol
from champ3d.eval.features import ClipSampling
from champ3d.eval.frames import FrameResize, FrameSelection
from champ3d.eval.protocol import PROTOCOL_DIR
from champ3d.eval.registry import resolve_metrics


def test_shipped_protocols():
    assert sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml")) == ["orbit", "tiktok_self", "ubc_self"]
    tiktok = load_protocol("tiktok_self")
    assert tiktok.profile == "legacy" and tiktok.split == "test"
    assert tiktok.resize == FrameResize(256, 256, "center", "bicubic")
    assert tiktok.frames == FrameSelection(start=1, stride=1)  # frame 0 is the reference image
    assert tiktok.clips == ClipSampling(16, 1)
    weight_free = ("PoseError", "PCK", "Jitter", "FootSkating", "MaskIoU")
    assert tiktok.metrics == ("L1", "PSNR", "SSIM", "LPIPS", "FID", "FID-VID", "FVD") + weight_free
    assert [m.name for m in resolve_metrics(tiktok.metrics, "legacy", "t")] == [
        "L1_disco", "PSNR_star", "PSNR_legacy_uint8", "SSIM_gray7", "LPIPS_vgg_disco", "FID_pytorchfid",
        "FID_VID_3drn50", "FVD_i3d_disco", "MPJPE", "PA_MPJPE", "PCK_0.05", "PCK_0.1", "jitter", "foot_skate",
        "mask_IoU"]
    ubc = load_protocol("ubc_self")
    assert ubc.metrics == ("PSNR", "SSIM", "LPIPS", "FVD") + weight_free and ubc.resize is None
    orbit = load_protocol(PROTOCOL_DIR / "orbit.yaml")
    assert orbit.metrics == ("L1", "PSNR", "SSIM", "LPIPS", "FID", "FVD", "MaskIoU", "MultiView")
    assert (orbit.orbit.views, orbit.orbit.step_deg) == (30, 12.0)
    assert orbit.resize == FrameResize(256, 256, "center", "bicubic") and orbit.frames.start == 0
    assert orbit.profile == "clean"


def _write(tmp_path, data):
    path = tmp_path / "proto.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {"name": "p", "split": "test", "profile": "clean", "metrics": ["PSNR"]}


@pytest.mark.parametrize("change, message", [
    ({"extra": 1}, "unknown key 'extra'"),
    ({"frames": {"start": 1, "strid": 2}}, "unknown key 'frames.strid'"),
    ({"bootstrap": {"seeds": 1}}, "unknown key 'bootstrap.seeds'"),
    ({"frames": {"start": "one"}}, "'frames.start' must be int"),
    ({"frames": {"stride": 0}}, "'frames.stride' must be > 0"),
    ({"resize": {"size": [256]}}, "'resize.size' must be"),
    ({"resize": {"size": [8, 8], "filter": "nearest"}}, "'resize.filter' must be one of"),
    ({"metrics": ["PSNR", "FOO"]}, "FOO"),
    ({"metrics": []}, "non-empty list"),
    ({"profile": "disco"}, "'profile' must be one of"),
    ({"orbit": {"views": 30}}, "needs both"),
    ({"bootstrap": {"confidence": 1.5}}, "confidence"),
    ({"reference_frame": "last"}, "reference_frame"),
])
def test_invalid_protocols_name_file_and_key(tmp_path, change, message):
    path = _write(tmp_path, {**BASE, **change})
    with pytest.raises(Champ3dInputError) as error:
        load_protocol(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_missing_required_key_and_unknown_name(tmp_path):
    data = dict(BASE)
    del data["split"]
    with pytest.raises(Champ3dInputError, match="missing required key 'split'"):
        load_protocol(_write(tmp_path, data))
    with pytest.raises(Champ3dInputError, match="no protocol named 'tiktok'"):
        load_protocol("tiktok")


def test_defaults(tmp_path):
    protocol = load_protocol(_write(tmp_path, BASE))
    assert protocol.frames == FrameSelection(0, 1) and protocol.resize is None and protocol.orbit is None
    assert protocol.bootstrap.samples == 1000 and protocol.bootstrap.seed == 0
