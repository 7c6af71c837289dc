"""Pose-following, jitter, foot-skating and mask-IoU metrics: the maths on constructed tracks,
then the whole path (MediaPipe, the body fit, the fit cache, evaluate) on real footage."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from champ3d.errors import Champ3dInputError
from champ3d.eval import evaluate, pose
from champ3d.eval.fits import load_fitted

# -- the measures on constructed keypoint tracks -----------------------------------------------


def _track(seed: int = 0, frames: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.3, size=(frames, pose.NUM_BODY_KEYPOINTS, 3)) + np.array([0.1, -0.2, 3.0])


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_mpjpe_is_root_relative_and_pa_mpjpe_removes_a_similarity():
    target = _track()
    moved = target + np.array([0.5, -0.3, 2.0])  # the root moves with everything: no error
    np.testing.assert_allclose(pose.mpjpe(moved, target), 0.0, atol=1e-9)
    bent = target.copy()
    bent[:, 9] += [0.0, 0.0, 0.023]  # one keypoint (left wrist) 23 mm off
    np.testing.assert_allclose(pose.mpjpe(bent, target), 23.0 / pose.NUM_BODY_KEYPOINTS, rtol=1e-9)

    pelvis = target[:, list(pose.PELVIS)].mean(axis=1, keepdims=True)
    rotation = _rotation(np.array([0.3, 1.0, -0.2]), 0.7)
    similar = 1.3 * (target - pelvis) @ rotation.T + pelvis + 0.4
    assert np.all(pose.mpjpe(similar, target) > 50.0)
    np.testing.assert_allclose(pose.pa_mpjpe(similar, target), 0.0, atol=1e-6)
    # a mirror image is not a rotation: Procrustes must not undo it
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    assert np.all(pose.pa_mpjpe(mirrored, target) > 10.0)


def test_procrustes_matches_the_closed_form_on_one_frame():
    rng = np.random.default_rng(3)
    source, target = rng.normal(size=(1, 23, 3)), rng.normal(size=(1, 23, 3))
    aligned = pose.procrustes_align(source, target)
    residual = np.sum((aligned - target) ** 2)
    for _ in range(200):  # no nearby similarity transform does better
        jitter_rotation = _rotation(rng.normal(size=3), rng.normal(0, 0.02))
        centre = aligned[0].mean(axis=0)
        perturbed = (aligned[0] - centre) @ jitter_rotation.T * rng.normal(1.0, 0.01) + centre + rng.normal(0, 0.01, 3)
        assert np.sum((perturbed - target[0]) ** 2) >= residual - 1e-12


def test_pck_thresholds_on_the_target_box_height():
    target = np.zeros((2, pose.NUM_BODY_KEYPOINTS, 2))
    target[:, :, 1] = np.linspace(0, 200, pose.NUM_BODY_KEYPOINTS)  # box height 200 px
    pred = target.copy()
    pred[0, :5, 0] += 9.0    # within 0.05 * 200 = 10 px
    pred[1, :5, 0] += 11.0   # beyond 10 px, within 20 px
    np.testing.assert_allclose(pose.pck(pred, target, 0.05), [1.0, 1 - 5 / 23])
    np.testing.assert_allclose(pose.pck(pred, target, 0.1), [1.0, 1.0])


def test_jitter_is_the_mean_acceleration_of_the_articulation():
    steady = _track(frames=1).repeat(8, axis=0)
    steady += np.arange(8)[:, None, None] * np.array([0.01, 0.0, 0.02])  # constant velocity, rigid
    assert pose.jitter(steady) == pytest.approx(0.0, abs=1e-9)
    shaking = steady.copy()
    shaking[4, 9, 0] += 0.002  # one keypoint 2 mm off in one frame: second differences -2, +4, -2 mm there
    expected = (2 + 4 + 2) / (6 * pose.NUM_BODY_KEYPOINTS)
    assert pose.jitter(shaking) == pytest.approx(expected, rel=1e-6)
    assert np.isnan(pose.jitter(steady[:2]))


def test_foot_skating_counts_feet_on_the_ground_only():
    frames = 10
    track = np.zeros((frames, pose.NUM_BODY_KEYPOINTS, 3))
    track[..., 1] = 0.0   # everything 0.9 m above the feet
    track[..., 2] = 3.0
    left, right = list(pose.FOOT_KEYPOINTS[:3]), list(pose.FOOT_KEYPOINTS[3:])
    track[:, left, 1] = 0.9                             # left foot on the ground (camera y points down) ...
    track[:, left, 0] = 0.004 * np.arange(frames)[:, None]  # ... sliding 4 mm per frame
    track[:, right, 1] = 0.9 - 0.2                      # right foot lifted 20 cm ...
    track[:, right, 0] = 0.05 * np.arange(frames)[:, None]  # ... and swinging fast: not skating
    assert pose.foot_skating(track) == pytest.approx(4.0, rel=1e-9)
    assert pose.foot_contacts(track)[:, :3].all() and not pose.foot_contacts(track)[:, 3:].any()
    track[:, right, 1] = 0.9 - 0.04  # 4 cm up counts as contact: its slide now enters the mean
    assert pose.foot_skating(track) == pytest.approx((4.0 + 50.0) / 2, rel=1e-9)
    track[::2, :, 1] -= 1.0  # every other frame the whole body jumps: contact never holds across a step
    assert np.isnan(pose.foot_skating(track))


def test_track_shapes_are_checked():
    with pytest.raises(ValueError, match=r"expected \(T, 23, 3\)"):
        pose.mpjpe(np.zeros((3, 17, 3)), np.zeros((3, 17, 3)))
    with pytest.raises(ValueError, match="differ in shape"):
        pose.mpjpe(_track(frames=3), _track(frames=4))


# -- real footage: the dance clip shifted in time ----------------------------------------------

CLIP = "video/dance_unianimate_source.mp4"
FRAMES = 16
SHIFTS = (0, 1, 2, 4)


def _protocol(folder: Path, metrics: list[str]) -> Path:
    path = folder / f"dance_{'_'.join(metrics)}.yaml"
    path.write_text(yaml.safe_dump({"name": "dance_self", "split": "test", "profile": "clean",
                                    "frames": {"start": 0, "stride": 1}, "metrics": metrics,
                                    "bootstrap": {"samples": 200, "seed": 0}}))
    return path


def _write_frames(folder: Path, frames) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png", compress_level=1)


def _per_video(path: Path) -> dict[str, dict]:
    with open(path, newline="") as handle:
        return {row["video_id"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def dance(real_fixtures, body, tmp_path_factory):
    """Ground truth: the clip's first 16 frames, under four video ids; predictions: the
    clip delayed by 0, 1, 2 and 4 frames. One evaluation fits each distinct video once."""
    clip = real_fixtures / CLIP
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    with av.open(str(clip)) as container:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(FRAMES + max(SHIFTS)), container.decode(video=0))]
    root = tmp_path_factory.mktemp("dance")
    for shift in SHIFTS:
        _write_frames(root / "gt" / f"shift{shift}", frames[:FRAMES])
        _write_frames(root / "pred" / f"shift{shift}", frames[shift:shift + FRAMES])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the fitter's small batches: threads only contend on a busy machine
    protocol = _protocol(root, ["PoseError", "PCK", "Jitter", "FootSkating", "MaskIoU"])
    result = evaluate(protocol, root / "pred", root / "gt", root / "out", body=body, method="delayed")
    yield root, result, frames[:FRAMES]
    torch.set_num_threads(threads)


def test_ground_truth_follows_its_own_fit_and_error_grows_with_delay(dance):
    root, result, _ = dance
    videos = _per_video(root / "out" / "per_video.csv")
    mpjpe = [float(videos[f"shift{s}"]["MPJPE"]) for s in SHIFTS]
    pa_mpjpe = [float(videos[f"shift{s}"]["PA_MPJPE"]) for s in SHIFTS]
    pck = [float(videos[f"shift{s}"]["PCK_0.05"]) for s in SHIFTS]
    assert mpjpe[0] < 1e-6 and pa_mpjpe[0] < 1e-6 and pck[0] == 1.0
    assert all(a < b for a, b in zip(mpjpe, mpjpe[1:])), mpjpe
    assert all(a < b for a, b in zip(pa_mpjpe, pa_mpjpe[1:])), pa_mpjpe
    assert all(a >= b for a, b in zip(pck, pck[1:])) and pck[-1] < 0.9, pck
    assert mpjpe[-1] > 20.0  # four frames of a dance move the joints by centimetres
    # without guidance folders, mask IoU is reported as needing them and the rest runs
    assert result.summary["unavailable"]["mask_IoU"]["reason"] == "needs guidance folders"
    assert "needs guidance folders" in (root / "out" / "table.md").read_text()


def test_temporal_measures_are_one_value_per_video(dance):
    root, result, _ = dance
    videos = _per_video(root / "out" / "per_video.csv")
    for name in ("jitter", "foot_skate"):
        values = [float(videos[f"shift{s}"][name]) for s in SHIFTS]
        assert all(0.0 < v < 100.0 for v in values), (name, values)
        summary = result.summary["metrics"][name]
        assert summary["kind"] == "video" and summary["n_videos"] == 4
        assert summary["value"] == pytest.approx(np.mean(values), rel=1e-12)
        assert summary["ci"][0] <= summary["value"] <= summary["ci"][1]


def test_fitting_the_same_frames_twice_gives_the_same_fit(dance, body):
    """The cached ground-truth fit against a fresh fit of the same frames."""
    from champ3d.guidance import fit_media

    root, result, _ = dance
    cached = load_fitted(Path(_video_record(root, "shift0")["inputs"]["pose_target"]["path"]), body)
    fresh = fit_media(root / "gt" / "shift0", body)
    with torch.no_grad():
        again = body.keypoints(fresh.fit.params)[:, :pose.NUM_BODY_KEYPOINTS].double().numpy()
    assert np.max(np.abs(again - cached.keypoints)) < 1e-6  # metres
    assert np.max(pose.mpjpe(again, cached.keypoints)) < 1e-3  # millimetres


def _video_record(root: Path, video_id: str) -> dict:
    return json.loads((root / "out" / "videos" / f"{video_id}.eval.json").read_text())["record"]


def test_each_distinct_video_is_fitted_once_and_reused(dance, body):
    root, result, _ = dance
    fits = sorted((root / "out" / "fits").glob("*.json"))
    assert len(fits) == 4  # the ground truth (four ids, one content) and three delayed clips; shift0 is the same
    stamps = {f: f.stat().st_mtime_ns for f in fits}
    again = evaluate(_protocol(root, ["PoseError"]), root / "pred", root / "gt", root / "again", body=body,
                     fit_cache=root / "out" / "fits")
    assert {f: f.stat().st_mtime_ns for f in fits} == stamps and len(list((root / "out" / "fits").glob("*"))) == 8
    first = _per_video(root / "out" / "per_video.csv")
    second = _per_video(root / "again" / "per_video.csv")
    assert all(first[v]["MPJPE"] == second[v]["MPJPE"] for v in first)
    assert again.summary["metrics"]["MPJPE"]["frame_pooled"]["value"] == \
        result.summary["metrics"]["MPJPE"]["frame_pooled"]["value"]


@pytest.fixture(scope="module")
def guidance(dance, body):
    """Guidance folders made from the ground-truth fit: its body mask rendered through its own
    camera, and the fit itself as ``fits/aligned``."""
    from champ3d.fitting.fit_io import save_fit
    from champ3d.guidance import rendered_batches
    from champ3d.io.writers import PngSequenceWriter

    root, result, _ = dance
    fitted = load_fitted(Path(_video_record(root, "shift0")["inputs"]["pose_target"]["path"]), body)
    first = root / "guidance" / "shift0"
    save_fit(first / "fits" / "aligned", fitted.fit, fitted.detections)
    with PngSequenceWriter(first / "mask") as masks:
        for frames, maps, _ in rendered_batches(fitted.fit, body, fitted.fit.camera):
            for i in range(frames.stop - frames.start):
                masks.write(maps.mask[i])
    for shift in SHIFTS[1:]:
        shutil.copytree(first, root / "guidance" / f"shift{shift}")
    return root / "guidance"


def test_guidance_gives_the_pose_target_and_the_masks(dance, guidance, body):
    root, _, _ = dance
    result = evaluate(_protocol(root, ["PoseError", "MaskIoU"]), root / "pred", root / "gt", root / "guided",
                      body=body, guidance_dir=guidance, fit_cache=root / "out" / "fits")
    guided, plain = _per_video(root / "guided" / "per_video.csv"), _per_video(root / "out" / "per_video.csv")
    for video in guided:  # the guidance fit holds the same poses as the ground truth's fit
        assert float(guided[video]["MPJPE"]) == pytest.approx(float(plain[video]["MPJPE"]), abs=1e-9)
    record = json.loads((root / "guided" / "videos" / "shift1.eval.json").read_text())["record"]
    assert record["inputs"]["pose_target"]["kind"] == "guidance fit"
    iou = [float(guided[f"shift{s}"]["mask_IoU"]) for s in SHIFTS]
    assert iou[0] > 0.7 and iou[-1] < iou[0], iou
    assert result.summary["unavailable"] == {}


def test_guidance_of_another_length_names_the_video_and_the_field(dance, guidance, body, tmp_path):
    root, _, _ = dance
    short = tmp_path / "guidance"
    shutil.copytree(guidance, short)
    for shift in SHIFTS:
        (short / f"shift{shift}" / "mask" / f"{FRAMES - 1:04d}.png").unlink()
    with pytest.raises(Champ3dInputError) as error:
        evaluate(_protocol(root, ["MaskIoU"]), root / "pred", root / "gt", tmp_path / "out", body=body,
                 guidance_dir=short, fit_cache=root / "out" / "fits")
    assert "video shift0: the guidance mask folder has 15 frames, the prediction 16" in str(error.value)
    missing = tmp_path / "no_masks"
    (missing / "shift0").mkdir(parents=True)
    with pytest.raises(Champ3dInputError, match=r"no_masks/shift0/mask: video shift0: guidance mask not found"):
        evaluate(_protocol(root, ["MaskIoU"]), root / "pred", root / "gt", tmp_path / "out2", body=body,
                 guidance_dir=missing, fit_cache=root / "out" / "fits")
