"""Training data: clip folders made from rendered guidance and footage of the rendered body, samples, configs.

The clip is a body-model mannequin filmed by the renderer: the guidance folders come from
champ3d's own guidance writer (``write_guidance``: the renderer and the DWPose-style
skeleton), the "footage" is the same body shaded by its normals and encoded as an mp4, and
``champ3d train --make-clip`` turns the two into a clip folder. (Fitting a real video first
would add about 20 s per clip on an idle machine and nothing the training code sees.)
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from champ_tiny import tiny_clip
from omegaconf import OmegaConf

from champ3d.body.anny_body import BODY_JOINTS
from champ3d.cli import main as cli_main
from champ3d.errors import Champ3dInputError
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fitter import BodyFit
from champ3d.guidance import write_guidance
from champ3d.guidance_folder import GuidanceFolder
from champ3d.io.writers import VideoWriter
from champ3d.models import CHAMP_GUIDANCE_TYPES
from champ3d.models.clip import ClipImageConditioner
from champ3d.train.clips import TrainingClip, find_clips, write_training_clip
from champ3d.train.config import load_train_config
from champ3d.train.dataset import ChampTrainingSamples, SampleSpec, StepSampler, clip_frames, image_pair_frames

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIP_FRAMES = 12
CLIP_SIZE = (64, 48)  # H, W
SKIN = np.array([224, 172, 140], np.float32)
BACKGROUND = np.array([90, 110, 130], np.float32)


def shaded_frame(normal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mannequin lit from the camera: skin colour scaled by how much each pixel faces it."""
    facing = normal[..., 2:3].astype(np.float32) / 255.0 * 2.0 - 1.0
    lit = SKIN * np.clip(0.35 + 0.65 * facing, 0.0, 1.0)
    return np.where(mask[..., :1] > 0, lit, BACKGROUND).astype(np.uint8)


def build_mannequin_clip(folder: Path, body) -> Path:
    """Guidance + video of a waving, turning mannequin, made into the clip folder ``folder/clip``."""
    phase = torch.linspace(0.0, 2.0 * math.pi, CLIP_FRAMES)
    params = body.zero_params(CLIP_FRAMES)
    joint = BODY_JOINTS.index
    params.body_pose[:, joint("upperarm01.L"), 1] = 0.9 * torch.sin(phase)
    params.body_pose[:, joint("upperarm01.R"), 1] = -0.9 * torch.sin(phase)
    params.body_pose[:, joint("lowerleg01.L"), 0] = 0.5 * torch.sin(2 * phase).clamp(min=0)
    params.global_orient[:, 1] = 0.25 * torch.sin(phase)
    params.transl[:] = torch.tensor([0.0, 0.02, 40.0])
    height, width = CLIP_SIZE
    camera = CameraIntrinsics.centred(width, height)
    fit = BodyFit(params, camera, np.zeros(CLIP_FRAMES, bool), np.zeros(CLIP_FRAMES, np.float32), "anny")
    guidance_dir = folder / "guidance"
    guidance_dir.mkdir(parents=True)
    write_guidance(fit, body, camera, guidance_dir)
    guidance = GuidanceFolder(guidance_dir)
    with VideoWriter(folder / "mannequin.mp4", fps=12) as video:
        for i in range(CLIP_FRAMES):
            video.write(shaded_frame(guidance.read("normal", i), guidance.read("mask", i)))
    clip = folder / "clip"
    assert cli_main(["train", "--make-clip", str(folder / "mannequin.mp4"), str(guidance_dir), str(clip)]) == 0
    return clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory, body) -> Path:
    return build_mannequin_clip(tmp_path_factory.mktemp("mannequin"), body)


@pytest.fixture(scope="module")
def clip_pixels():
    return ClipImageConditioner(tiny_clip(0)).pixel_values


def copy_of(clip_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "clip_copy"
    shutil.copytree(clip_dir, copy)
    return copy


def test_made_clip_holds_the_video_frames_at_the_guidance_size(clip_dir):
    clip = TrainingClip(clip_dir, CHAMP_GUIDANCE_TYPES)
    assert (clip.num_frames, clip.size) == (CLIP_FRAMES, CLIP_SIZE)
    assert sorted(p.name for p in (clip_dir / "images").iterdir()) == [f"{i:04d}.png" for i in range(CLIP_FRAMES)]
    for i in (0, CLIP_FRAMES // 2, CLIP_FRAMES - 1):
        expected = shaded_frame(clip.guidance.read("normal", i), clip.guidance.read("mask", i)).astype(np.float32)
        error = np.abs(clip.image(i).astype(np.float32) - expected)
        assert error.mean() < 6.0, f"frame {i} differs from the footage by {error.mean():.1f} on average"


def test_semantic_map_is_blanked_outside_the_mask(clip_dir, tmp_path):
    clip_copy = copy_of(clip_dir, tmp_path)
    mask = np.asarray(GuidanceFolder(clip_copy).read("mask", 3))[..., 0]
    from PIL import Image

    Image.fromarray(np.full((*CLIP_SIZE, 3), 200, np.uint8)).save(clip_copy / "semantic_map" / "0003.png")
    frame = TrainingClip(clip_copy, CHAMP_GUIDANCE_TYPES).guidance_frame("semantic_map", 3)
    assert (frame[mask == 0] == 0).all() and (frame[mask > 0] == 200).all()


def test_frame_counts_that_disagree_name_the_clip_folder(clip_dir, tmp_path):
    clip_copy = copy_of(clip_dir, tmp_path)
    (clip_copy / "images" / f"{CLIP_FRAMES - 1:04d}.png").unlink()
    with pytest.raises(Champ3dInputError, match="frame counts disagree") as err:
        TrainingClip(clip_copy, CHAMP_GUIDANCE_TYPES)
    assert str(clip_copy) in str(err.value)
    with pytest.raises(Champ3dInputError) as err:
        find_clips([tmp_path], CHAMP_GUIDANCE_TYPES)
    assert str(clip_copy) in str(err.value)


def test_guidance_types_that_disagree_name_the_clip_folder(clip_dir, tmp_path):
    clip_copy = copy_of(clip_dir, tmp_path)
    (clip_copy / "dwpose" / "0000.png").unlink()
    with pytest.raises(Champ3dInputError, match="different frame counts") as err:
        TrainingClip(clip_copy, CHAMP_GUIDANCE_TYPES)
    assert str(clip_copy) in str(err.value)


def test_frames_of_another_size_are_refused(clip_dir, tmp_path):
    from PIL import Image

    clip_copy = copy_of(clip_dir, tmp_path)
    Image.new("RGB", (CLIP_SIZE[1] * 2, CLIP_SIZE[0] * 2)).save(clip_copy / "images" / "0000.png")
    with pytest.raises(Champ3dInputError, match="0000.png.*128x96, the guidance is 64x48"):
        TrainingClip(clip_copy, CHAMP_GUIDANCE_TYPES)


def test_guidance_rendered_for_the_reference_is_refused(clip_dir, tmp_path):
    guidance = tmp_path / "guidance"
    for name in (*CHAMP_GUIDANCE_TYPES, "mask"):
        shutil.copytree(clip_dir / name, guidance / name)
    (guidance / "fits").mkdir()
    (guidance / "fits" / "aligned.json").write_text(json.dumps({"align": {"keep_driver_shape": False, "keep_driver_camera": False}}))
    with pytest.raises(Champ3dInputError, match="--keep-driver-shape --keep-driver-camera") as err:
        write_training_clip(clip_dir.parent / "mannequin.mp4", guidance, tmp_path / "clip")
    assert str(guidance) in str(err.value)
    assert not (tmp_path / "clip").exists()


def test_video_shorter_than_the_guidance_is_refused(clip_dir, tmp_path):
    short = tmp_path / "short.mp4"
    with VideoWriter(short, fps=12) as video:
        for i in range(CLIP_FRAMES - 4):
            video.write(np.asarray(TrainingClip(clip_dir, CHAMP_GUIDANCE_TYPES).image(i)))
    with pytest.raises(Champ3dInputError, match=f"short.mp4: has {CLIP_FRAMES - 4} frames, the guidance {CLIP_FRAMES}"):
        write_training_clip(short, clip_dir, tmp_path / "clip")
    assert not list(tmp_path.glob("clip*"))


def test_find_clips_takes_clip_folders_and_folders_of_them(clip_dir, tmp_path):
    assert [c.path for c in find_clips([clip_dir.parent], CHAMP_GUIDANCE_TYPES)] == [clip_dir]
    assert [c.path for c in find_clips([clip_dir], ["depth"])] == [clip_dir]
    with pytest.raises(Champ3dInputError, match="no clip folders"):
        find_clips([tmp_path], CHAMP_GUIDANCE_TYPES)
    with pytest.raises(Champ3dInputError, match="not found"):
        find_clips([tmp_path / "missing"], CHAMP_GUIDANCE_TYPES)


def test_samples_are_reproducible_and_guidance_lines_up_with_the_frames(clip_dir, clip_pixels):
    clips = find_clips([clip_dir], CHAMP_GUIDANCE_TYPES)
    for frames in (1, 4):
        spec = SampleSpec(image_size=(48, 40), crop_scale=(0.8, 1.0), num_frames=frames, sample_margin=4, frame_stride=2)
        samples = ChampTrainingSamples(clips, spec, seed=7, clip_pixels=clip_pixels)
        sample = samples[5]
        assert sample["pixels"].shape == (3, frames, 48, 40)
        assert sample["ref_pixels"].shape == (3, 48, 40) and sample["clip_pixels"].shape == (3, 224, 224)
        assert set(sample["guidance"]) == set(CHAMP_GUIDANCE_TYPES)
        assert all(g.shape == (3, frames, 48, 40) and 0 <= g.min() and g.max() <= 1 for g in sample["guidance"].values())
        assert -1 <= sample["pixels"].min() and sample["pixels"].max() <= 1
        again = samples[5]
        assert torch.equal(again["pixels"], sample["pixels"]) and torch.equal(again["ref_pixels"], sample["ref_pixels"])
        assert not torch.equal(samples[6]["pixels"], sample["pixels"])
        # The same crop cuts frames and guidance: the body (non-black semantic map) is where the
        # frame leaves the background colour.
        body = sample["guidance"]["semantic_map"].amax(dim=0) > 0.1
        background = torch.from_numpy(BACKGROUND / 127.5 - 1.0).float().view(3, 1, 1, 1)
        off_background = (sample["pixels"] - background).abs().amax(dim=0) > 0.1
        agreement = (body == off_background).float().mean()
        assert body.float().mean() > 0.1 and agreement > 0.9, f"guidance and frame agree on {agreement:.2f} of the pixels"


def test_image_pair_rule_keeps_the_margin():
    rng = np.random.default_rng(0)
    pairs = [image_pair_frames(rng, 12, 4) for _ in range(300)]
    assert all(abs(t - r) >= 4 for r, t in pairs)
    assert {r for r, _ in pairs} == set(range(12))
    short = [image_pair_frames(rng, 3, 4) for _ in range(100)]
    assert all(0 <= r < 3 and 0 <= t < 3 for r, t in short)


def test_clip_rule_spreads_frames_by_the_stride():
    rng = np.random.default_rng(0)
    for _ in range(50):
        ref, frames = clip_frames(rng, 12, 4, 2)
        assert 0 <= ref < 12 and np.diff(frames).tolist() == [2, 2, 2] and 0 <= frames[0] and frames[-1] < 12
    _, frames = clip_frames(rng, 3, 4, 2)
    assert frames == [0, 0, 1, 2]


def test_step_sampler_shards_processes_and_resumes():
    def first(sampler, count):
        it = iter(sampler)
        return [next(it) for _ in range(count)]

    rank0, rank1 = first(StepSampler(2, 0, 0, 2), 6), first(StepSampler(2, 0, 1, 2), 6)
    assert sorted(rank0 + rank1) == list(range(12))
    assert first(StepSampler(2, 1, 0, 2), 4) == rank0[2:]


def test_shipped_configs_are_valid():
    stage1 = load_train_config(REPO_ROOT / "configs" / "train" / "stage1.yaml")
    stage2 = load_train_config(REPO_ROOT / "configs" / "train" / "stage2.yaml", ["solver.batch_size=2"])
    assert (stage1.stage, stage1.data.image_size, stage1.solver.batch_size) == (1, [768, 768], 4)
    assert (stage2.stage, stage2.data.num_frames, stage2.solver.batch_size) == (2, 24, 2)
    assert stage2.solver.gradient_checkpointing and not stage1.solver.gradient_checkpointing


def test_config_errors_name_the_file_and_key(tmp_path):
    base = OmegaConf.load(REPO_ROOT / "configs" / "train" / "stage2.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.merge(base, {"solver": {"learing_rate": 1.0}})))
    with pytest.raises(Champ3dInputError, match=r"bad.yaml.solver.learing_rate"):
        load_train_config(path)
    path.write_text(OmegaConf.to_yaml(OmegaConf.merge(base, {"model": {"motion_module_path": None}})))
    with pytest.raises(Champ3dInputError, match=r"bad.yaml.model.motion_module_path: stage 2 needs it"):
        load_train_config(path)
    with pytest.raises(Champ3dInputError, match=r"override solver.batch_size=two"):
        load_train_config(REPO_ROOT / "configs" / "train" / "stage1.yaml", ["solver.batch_size=two"])
    with pytest.raises(Champ3dInputError, match=r"data.image_size"):
        load_train_config(REPO_ROOT / "configs" / "train" / "stage1.yaml", ["data.image_size=[100,64]"])
