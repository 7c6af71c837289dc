"""Pixel metrics against scikit-image and OpenCV, on real and synthetic frames, and the
exact places where the legacy and clean profiles differ."""
from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from champ3d.eval import METRICS, PROFILES
from champ3d.eval.pixel import L1Spec, PSNRSpec, SSIMSpec, l1, psnr, rgb_to_gray_bt601, ssim

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("CHAMP3D_FIXTURES", REPO.parent / "shared" / "fixtures"))
UBC_CLIP = FIXTURES / "video" / "ubc_fashion_91BjuE6irxS.mp4"

SSIM_GRAY7 = SSIMSpec("gray_bt601", "uniform", radius=3, sample_covariance=True)
SSIM_RGB_GAUSS = SSIMSpec("rgb", "gaussian", radius=5, sample_covariance=False, sigma=1.5)


def _synthetic_pairs() -> tuple[np.ndarray, np.ndarray]:
    """Smooth images plus noise: a realistic SSIM range, 5 frames of 48x64."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:48, 0:64]
    base = np.stack([128 + 100 * np.sin(xx / 7.0 + c) * np.cos(yy / 9.0 - c) for c in range(3)], axis=-1)
    gt = np.clip(base[None] + rng.normal(0, 10, size=(5, 48, 64, 3)), 0, 255).astype(np.uint8)
    pred = np.clip(gt.astype(np.float64) + rng.normal(0, 25, size=gt.shape), 0, 255).astype(np.uint8)
    return pred, gt


def _real_pairs() -> tuple[np.ndarray, np.ndarray]:
    """Frames 5..9 of a UBC test clip as a fake generation of frames 0..4 (the doc's setup)."""
    if not UBC_CLIP.is_file():
        pytest.skip(f"fixture clip not found: {UBC_CLIP} (set CHAMP3D_FIXTURES)")
    with av.open(str(UBC_CLIP)) as container:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(10), container.decode(video=0))]
    frames = np.stack(frames)
    return frames[5:], frames[:5]


@pytest.fixture(params=["synthetic", "real"])
def pairs(request):
    return _synthetic_pairs() if request.param == "synthetic" else _real_pairs()


def test_gray_conversion_is_bit_exact_with_opencv():
    v = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(v, v, v, indexing="ij")
    every_colour = np.stack([r, g, b], axis=-1).reshape(4096, 4096, 3)
    np.testing.assert_array_equal(rgb_to_gray_bt601(every_colour), cv2.cvtColor(every_colour, cv2.COLOR_RGB2GRAY))


def test_psnr_matches_scikit_image(pairs):
    pred, gt = pairs
    values = psnr(pred, gt, PSNRSpec(uint8_wraparound=False, zero_mse_db=float("inf")))
    expected = [peak_signal_noise_ratio(g, p, data_range=255) for p, g in zip(pred, gt)]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-6)


def test_ssim_gray7_matches_disco_call(pairs):
    """DisCo: skimage defaults on cv2.COLOR_BGR2GRAY of cv2.imread (BGR) frames."""
    pred, gt = pairs
    values = ssim(pred, gt, SSIM_GRAY7)
    expected = [structural_similarity(cv2.cvtColor(p[..., ::-1], cv2.COLOR_BGR2GRAY),
                                      cv2.cvtColor(g[..., ::-1], cv2.COLOR_BGR2GRAY)) for p, g in zip(pred, gt)]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-6)


def test_ssim_rgb_gaussian_matches_scikit_image(pairs):
    pred, gt = pairs
    values = ssim(pred, gt, SSIM_RGB_GAUSS)
    expected = [structural_similarity(p, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      channel_axis=-1, data_range=255) for p, g in zip(pred, gt)]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-6)
    assert np.all(values < 0.999)


def test_l1_definitions(pairs):
    pred, gt = pairs
    n, h, w, _ = pred.shape
    diff = np.abs(pred.astype(np.float64) - gt.astype(np.float64))
    np.testing.assert_allclose(l1(pred, gt, L1Spec("unit_range")), diff.reshape(n, -1).mean(1) / 255.0, rtol=1e-12)
    # DisCo: err = |a - b| / (H*W) per pixel, then the mean of everything
    disco = [(np.abs(p.astype("float") - g.astype("float")) / float(h * w)).mean() for p, g in zip(pred, gt)]
    np.testing.assert_allclose(l1(pred, gt, L1Spec("pixel_count")), disco, rtol=1e-12)


def test_legacy_psnr_wraps_like_uint8_numpy():
    gt = np.full((3, 8, 8, 3), 100, dtype=np.uint8)
    pred = gt.copy()
    pred[0] += 16   # 16^2 = 256 wraps to 0: legacy sees identical frames
    pred[1] += 20   # 400 mod 256 = 144
    pred[2] -= 1    # (-1 mod 256)^2 = 65025 mod 256 = 1
    legacy = psnr(pred, gt, PSNRSpec(uint8_wraparound=True, zero_mse_db=100.0))
    np.testing.assert_allclose(legacy, [100.0, 20 * np.log10(255 / 12), 20 * np.log10(255)], rtol=1e-12)
    star = psnr(pred, gt, PSNRSpec(uint8_wraparound=False, zero_mse_db=100.0))
    np.testing.assert_allclose(star, [20 * np.log10(255 / 16), 20 * np.log10(255 / 20), 20 * np.log10(255)],
                               rtol=1e-12)
    # and it is literally the expression DisCo evaluated on uint8 arrays
    for p, g, value in zip(pred, gt, legacy):
        mse = np.mean((p - g) ** 2)
        assert value == (100.0 if mse == 0 else 20 * np.log10(255.0 / np.sqrt(mse)))


def _frame_metric(name):
    return METRICS[name].build(None)


WEIGHT_FREE = {"PoseError": ("MPJPE", "PA_MPJPE"), "PCK": ("PCK_0.05", "PCK_0.1"), "Jitter": ("jitter",),
               "FootSkating": ("foot_skate",), "MaskIoU": ("mask_IoU",), "MultiView": ("multiview_L1",)}


def test_profiles_differ_exactly_where_the_protocol_doc_says():
    """evaluation_protocols §0: the disco-compat profile keeps L1/H*W, both PSNRs, gray 7x7 SSIM,
    VGG LPIPS on [0,1], pytorch-fid FID and the PyTorch-I3D FVD; clean uses L1 on [0,1], PSNR,
    RGB Gaussian SSIM, Alex LPIPS, clean-fid FID and the StyleGAN-V FVD. FID-VID has one
    implementation, and the weight-free metrics have one definition each."""
    legacy, clean = PROFILES["legacy"].variants, PROFILES["clean"].variants
    assert legacy == {"L1": ("L1_disco",), "PSNR": ("PSNR_star", "PSNR_legacy_uint8"), "SSIM": ("SSIM_gray7",),
                      "LPIPS": ("LPIPS_vgg_disco",), "FID": ("FID_pytorchfid",), "FID-VID": ("FID_VID_3drn50",),
                      "FVD": ("FVD_i3d_disco",), **WEIGHT_FREE}
    assert clean == {"L1": ("L1",), "PSNR": ("PSNR",), "SSIM": ("SSIM_rgb_gauss11",), "LPIPS": ("LPIPS_alex",),
                     "FID": ("FID_clean",), "FID-VID": ("FID_VID_3drn50",), "FVD": ("FVD_styleganv",), **WEIGHT_FREE}
    differing = {g for g in legacy if legacy[g] != clean[g]}
    assert differing == {"L1", "PSNR", "SSIM", "LPIPS", "FID", "FVD"}
    # where they differ, no concrete metric is shared, so a column never mixes definitions
    assert all(not set(legacy[g]) & set(clean[g]) for g in differing)
    # every concrete metric is used by a profile, and weight-free ones need no weights
    used = {name for p in (legacy, clean) for names in p.values() for name in names}
    assert used == set(METRICS)
    assert all(not METRICS[n].weights for names in WEIGHT_FREE.values() for n in names)


def test_legacy_and_clean_values(pairs):
    pred, gt = pairs
    h, w = pred.shape[1:3]
    values = {name: _frame_metric(name)(pred, gt) for name in
              ("L1_disco", "L1", "PSNR_star", "PSNR_legacy_uint8", "PSNR", "SSIM_gray7", "SSIM_rgb_gauss11")}
    # L1: the same error on two scales, ratio 255 / (H*W)
    np.testing.assert_allclose(values["L1_disco"], values["L1"] * 255.0 / (h * w), rtol=1e-12)
    # PSNR*: peak 255 on uint8 equals peak 1 on [0,1] ...
    np.testing.assert_allclose(values["PSNR_star"], values["PSNR"], rtol=1e-12)
    # ... while the overflowing legacy PSNR reads higher
    assert np.all(values["PSNR_legacy_uint8"] > values["PSNR_star"])
    # identical frames: DisCo prints 100 dB, the clean value is infinite
    assert _frame_metric("PSNR_star")(gt[:1], gt[:1])[0] == 100.0
    assert _frame_metric("PSNR")(gt[:1], gt[:1])[0] == np.inf
    # SSIM: different colour handling and window, so different numbers
    assert np.all(np.abs(values["SSIM_gray7"] - values["SSIM_rgb_gauss11"]) > 1e-6)


def test_luma_blind_change_is_seen_only_by_rgb_ssim():
    """Swapping colours that share the same BT.601 luma is invisible to DisCo's gray SSIM."""
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 256, size=(1, 32, 32, 3), dtype=np.uint8)
    pred = gt.copy()
    pred[0, ::2, ::2] = [40, 120, 200]  # luma 105 (15-bit fixed point)
    gt[0, ::2, ::2] = [130, 80, 168]    # luma 105 as well
    assert np.array_equal(rgb_to_gray_bt601(pred), rgb_to_gray_bt601(gt))
    assert _frame_metric("SSIM_gray7")(pred, gt)[0] == pytest.approx(1.0, abs=1e-12)
    assert _frame_metric("SSIM_rgb_gauss11")(pred, gt)[0] < 0.99


def test_bad_frames_are_rejected():
    a = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        psnr(a.astype(np.float32), a, PSNRSpec(False, 100.0))
    with pytest.raises(ValueError, match="equal"):
        l1(a, a[:1], L1Spec("unit_range"))
    with pytest.raises(ValueError, match="smaller than"):
        ssim(a[:, :8, :8], a[:, :8, :8], SSIM_RGB_GAUSS)
