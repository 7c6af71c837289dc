"""Champ's generator end to end: real rendered guidance, tiny random-weight checkpoints in Champ's layout."""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from champ_tiny import one_intra_op_thread, write_weights_folder  # noqa: F401 (autouse fixture)

from champ3d.errors import Champ3dInputError
from champ3d.generators.champ import (
    SETTINGS_FILE,
    WeightsFolder,
    generate_video,
    guidance_types_for,
    load_generator,
    load_settings,
)
from champ3d.guidance_folder import GuidanceFolder
from champ3d.io import open_frames
from champ3d.models import CHAMP_GUIDANCE_TYPES
from champ3d.pipelines import ArrayGuidanceSource, FolderGuidanceSource, SlidingSchedule

REPO_ROOT = Path(__file__).resolve().parents[1]
PARITY_FIXTURES = Path(os.environ.get("CHAMP3D_PARITY_FIXTURES", REPO_ROOT / ".." / "shared" / "parity" / "champ" / "fixtures"))

NUM_FRAMES = 6
GUIDANCE_SIZE = (64, 48)  # H, W
FPS = Fraction(25, 2)
# Tiny-model settings: windows of 4 with overlap 2 give two windows over the 6 frames.
FAST = {"steps": 2, "context_frames": 4, "context_overlap": 2, "device": "cpu", "dtype": "fp32"}


@pytest.fixture(scope="module")
def guidance_dir(tmp_path_factory, body) -> Path:
    """Champ guidance of the body model raising an arm while turning, rendered by champ3d."""
    from champ3d.body.anny_body import BODY_JOINTS
    from champ3d.fitting.camera import CameraIntrinsics
    from champ3d.fitting.fitter import BodyFit
    from champ3d.guidance import write_guidance

    params = body.zero_params(NUM_FRAMES, body.default_shape())
    phase = torch.linspace(0.0, math.pi, NUM_FRAMES)
    params.body_pose[:, BODY_JOINTS.index("upperarm01.L"), 1] = 0.9 * torch.sin(phase)
    params.global_orient[:, 1] = 0.3 * torch.sin(phase)
    params.transl[:] = torch.tensor([0.0, 0.02, 40.0])
    camera = CameraIntrinsics.centred(GUIDANCE_SIZE[1], GUIDANCE_SIZE[0])
    fit = BodyFit(params, camera, np.zeros(NUM_FRAMES, bool), np.zeros(NUM_FRAMES), "test")
    folder = tmp_path_factory.mktemp("guidance") / "motion"
    folder.mkdir()
    write_guidance(fit, body, camera, folder)
    return folder


@pytest.fixture(scope="module")
def reference_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (80, 56, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def shared_weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights") / "pretrained_models"
    write_weights_folder(folder)
    return folder


@pytest.fixture()
def weights_dir(tmp_path, shared_weights) -> Path:
    """A private copy that a test may damage."""
    return Path(shutil.copytree(shared_weights, tmp_path / "pretrained_models"))


def copied_guidance(guidance_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(guidance_dir, tmp_path / "motion"))


# ------------------------------------------------------------------------ guidance from a folder


def test_folder_source_serves_what_the_array_source_serves(guidance_dir):
    folder = GuidanceFolder(guidance_dir)
    types = ("depth", "dwpose")
    arrays = {t: np.stack([folder.read(t, i) for i in range(len(folder))]) for t in types}
    indices = [4, 1, 2]
    for size in (None, (32, 40)):
        from_folder = FolderGuidanceSource(folder, types, size=size)
        expected = ArrayGuidanceSource(arrays, size=size)(indices)
        served = from_folder(indices)
        assert len(from_folder) == NUM_FRAMES and from_folder.guidance_types == types
        assert list(served) == list(types)
        for t in types:
            assert torch.equal(served[t], expected[t])
            assert served[t].stride() == expected[t].stride()  # channels-last, as Champ's loader
            height, width = GUIDANCE_SIZE if size is None else size[::-1]
            assert served[t].shape == (3, len(indices), height, width)
    # Frame 4 of the depth folder, read independently: 8-bit grey repeated over RGB, / 255.
    with Image.open(guidance_dir / "depth" / "0004.png") as image:
        grey = torch.from_numpy(np.array(image.convert("L"))).float() / 255.0
    assert torch.equal(FolderGuidanceSource(folder, types)(indices)["depth"][:, 0], grey.expand(3, -1, -1))
    assert grey.max() > 0.0


def test_folder_source_reads_frames_only_when_pulled(guidance_dir, tmp_path):
    path = copied_guidance(guidance_dir, tmp_path)
    source = FolderGuidanceSource(GuidanceFolder(path), ("normal",))
    (path / "normal" / "0005.png").unlink()
    assert source([0, 1, 2, 3])["normal"].shape[1] == 4
    with pytest.raises(Champ3dInputError, match="0005.png"):
        source([5])


def test_folder_source_refuses_a_type_the_folder_lacks(guidance_dir):
    folder = GuidanceFolder(guidance_dir, types=["depth", "normal"])
    with pytest.raises(Champ3dInputError, match="semantic_map"):
        FolderGuidanceSource(folder, ["depth", "semantic_map"])


def test_frame_counts_that_disagree_are_refused_naming_the_folder(guidance_dir, tmp_path):
    path = copied_guidance(guidance_dir, tmp_path)
    (path / "dwpose" / "0003.png").unlink()
    with pytest.raises(Champ3dInputError, match=r"different frame counts .*dwpose: 5") as err:
        GuidanceFolder(path)
    assert str(path) in str(err.value)


# ------------------------------------------------------------------------ end to end


def test_generate_video_writes_one_frame_per_guidance_frame(guidance_dir, shared_weights, reference_image, tmp_path):
    out = tmp_path / "champ.mp4"
    written = generate_video(GuidanceFolder(guidance_dir), reference_image, shared_weights, out, fps=FPS, config=FAST, progress=False)
    assert written == out and out.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["champ.mp4"]  # no temporary left over
    video = open_frames(out)
    frames = np.stack(list(video))
    assert video.frame_rate == FPS
    assert frames.shape == (NUM_FRAMES, *GUIDANCE_SIZE, 3)
    assert frames.std() > 1.0  # decoded content, not a blank video
    with pytest.raises(Champ3dInputError, match="exists"):
        generate_video(GuidanceFolder(guidance_dir), reference_image, shared_weights, out, fps=FPS, config=FAST, progress=False)


def test_generation_size_and_official_schedule_from_a_settings_file(guidance_dir, shared_weights, reference_image, tmp_path):
    out = tmp_path / "champ.mp4"
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({**FAST, "steps": 1, "width": 32, "height": 40, "schedule": "official", "decode_chunk_size": 5}))
    generate_video(GuidanceFolder(guidance_dir), reference_image, shared_weights, out, fps=24, config=config, progress=False)
    video = open_frames(out)
    assert video.size == (40, 32) and video.num_frames == NUM_FRAMES and video.frame_rate == 24


def test_mask_folder_is_not_read_and_types_follow_the_weights(guidance_dir, shared_weights):
    folder = GuidanceFolder(guidance_dir)
    assert "mask" in folder.types
    weights = WeightsFolder.resolve(shared_weights)
    assert weights.encoder_types() == CHAMP_GUIDANCE_TYPES
    assert guidance_types_for(weights, load_settings(FAST), folder) == CHAMP_GUIDANCE_TYPES
    chosen = load_settings({**FAST, "guidance_types": ["normal", "depth"], "extra_guidance_types": ["mask"]})
    assert guidance_types_for(weights, chosen, folder) == ("normal", "depth", "mask")


# ------------------------------------------------------------------------ bad input


def run_generator(guidance_dir, weights_dir, reference_image, tmp_path, **kwargs):
    folder = kwargs.pop("folder", None) or GuidanceFolder(guidance_dir)
    config = kwargs.pop("config", FAST)
    return generate_video(folder, reference_image, weights_dir, tmp_path / "out.mp4", fps=FPS, config=config, progress=False)


def assert_no_output(tmp_path: Path) -> None:
    """Neither the video nor a temporary of it is left behind."""
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("out.mp4")]


def test_guidance_type_the_weights_need_but_the_folder_lacks_is_named(guidance_dir, shared_weights, reference_image, tmp_path):
    folder = GuidanceFolder(guidance_dir, types=["depth", "normal", "semantic_map"])
    with pytest.raises(Champ3dInputError, match="needs 'dwpose' guidance") as err:
        run_generator(guidance_dir, shared_weights, reference_image, tmp_path, folder=folder)
    assert err.value.where == str(guidance_dir / "dwpose")
    assert_no_output(tmp_path)


@pytest.mark.parametrize(
    "remove, named",
    [
        ("champ/reference_unet.pth", "reference_unet"),
        ("champ/motion_module.pth", "motion_module"),
        ("sd-vae-ft-mse", "sd-vae-ft-mse"),
        ("image_encoder", "image_encoder"),
        ("configs/unet_additional_kwargs.json", "unet_additional_kwargs.json"),
    ],
)
def test_weights_folder_missing_a_part_is_named(guidance_dir, weights_dir, reference_image, tmp_path, remove, named):
    target = weights_dir / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(Champ3dInputError, match=named):
        run_generator(guidance_dir, weights_dir, reference_image, tmp_path)
    assert_no_output(tmp_path)


def test_champ_checkpoint_folder_given_instead_of_its_parent(guidance_dir, shared_weights, reference_image, tmp_path):
    with pytest.raises(Champ3dInputError, match="pass the folder that holds champ/"):
        run_generator(guidance_dir, shared_weights / "champ", reference_image, tmp_path)


def test_requested_type_without_checkpoint_names_the_file(guidance_dir, shared_weights, reference_image, tmp_path):
    config = {**FAST, "guidance_types": ["depth", "mask"]}
    with pytest.raises(Champ3dInputError, match="guidance_encoder_mask"):
        run_generator(guidance_dir, shared_weights, reference_image, tmp_path, config=config)


def test_checkpoint_with_wrong_shapes_is_named(guidance_dir, weights_dir, reference_image, tmp_path):
    path = weights_dir / "champ" / "guidance_encoder_normal.pth"
    state = torch.load(path, weights_only=True)
    state["conv_out.weight"] = torch.zeros(8, *state["conv_out.weight"].shape[1:])
    torch.save(state, path)
    with pytest.raises(Champ3dInputError, match="guidance_encoder_normal.pth.*conv_out.weight.*shape"):
        run_generator(guidance_dir, weights_dir, reference_image, tmp_path)
    assert_no_output(tmp_path)


class _RunsCodeWhenUnpickled:
    """Unpickling this object calls ``Path.touch(marker)``: the shape of a code-running checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_that_would_run_code_is_refused(guidance_dir, weights_dir, reference_image, tmp_path):
    marker = tmp_path / "unpickling_ran_code"
    path = weights_dir / "champ" / "denoising_unet.pth"
    state = torch.load(path, weights_only=True)
    state["payload"] = _RunsCodeWhenUnpickled(marker)
    torch.save(state, path)
    with pytest.raises(Champ3dInputError, match="denoising_unet.pth.*weights_only"):
        run_generator(guidance_dir, weights_dir, reference_image, tmp_path)
    assert not marker.exists()
    assert_no_output(tmp_path)


@pytest.mark.parametrize(
    "override, where",
    [
        ({"stepz": 3}, "config.stepz"),
        ({"width": 64}, "config.width"),
        ({"width": 60, "height": 64}, "config.width"),
        ({"schedule": "uniform"}, "config.schedule"),
        ({"dtype": "fp8"}, "config.dtype"),
        ({"context_overlap": 4, "context_frames": 4}, "config.context_overlap"),
        ({"extra_guidance_types": "textured"}, "config.extra_guidance_types"),
        ({"device": "gpu0"}, "config.device"),
    ],
)
def test_bad_settings_are_named(override, where):
    with pytest.raises(Champ3dInputError) as err:
        load_settings(override)
    assert err.value.where == where


def test_bad_settings_file_is_named(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("steps: 2\nseed: -1\n")
    with pytest.raises(Champ3dInputError) as err:
        load_settings(path)
    assert err.value.where == f"{path}.seed"
    path.write_text("steps: [2\n")
    with pytest.raises(Champ3dInputError, match="cannot read"):
        load_settings(path)


def test_complete_settings_round_trip():
    """A complete settings mapping (as job stages record it) loads back to the same settings."""
    settings = load_settings({**FAST, "guidance_types": ["depth"], "extra_guidance_types": ["textured"]})
    assert load_settings(dataclasses.asdict(settings)) == settings


def test_settings_file_documents_every_key():
    text = SETTINGS_FILE.read_text()
    for key in yaml.safe_load(text):
        line = next(line for line in text.splitlines() if line.startswith(f"{key}:"))
        assert "#" in line, key


# ------------------------------------------------------------------------ an extra, textured guidance type


def test_zero_initialised_textured_encoder_leaves_latents_unchanged(guidance_dir, shared_weights, reference_image):
    folder = GuidanceFolder(guidance_dir)
    frames = {t: np.stack([folder.read(t, i) for i in range(len(folder))]) for t in CHAMP_GUIDANCE_TYPES}
    textured = np.random.default_rng(3).integers(0, 256, frames["normal"].shape, dtype=np.uint8)
    weights = WeightsFolder.resolve(shared_weights)
    kwargs = dict(
        width=GUIDANCE_SIZE[1], height=GUIDANCE_SIZE[0], num_inference_steps=2, context_schedule=SlidingSchedule(4, 2)
    )

    def latents(pipe, guidance):
        noise = torch.randn((1, 4, NUM_FRAMES, GUIDANCE_SIZE[0] // 8, GUIDANCE_SIZE[1] // 8), generator=torch.Generator().manual_seed(5))
        return pipe.generate_latents(reference_image, ArrayGuidanceSource(guidance), latents=noise, **kwargs)

    plain = latents(load_generator(weights, CHAMP_GUIDANCE_TYPES), frames)
    pipe = load_generator(weights, (*CHAMP_GUIDANCE_TYPES, "textured"))
    assert pipe.model.guidance_types == (*CHAMP_GUIDANCE_TYPES, "textured")
    encoder = pipe.model.guidance_encoders["textured"]
    assert not encoder.conv_out.weight.any() and not encoder.conv_out.bias.any()
    assert encoder.conv_in.weight.abs().sum() > 0  # the rest is initialised as usual, ready to train
    with_textured = latents(pipe, {**frames, "textured": textured})
    assert torch.equal(with_textured, plain)

    # Once its output layer is non-zero, the textured frames do change the result.
    with torch.no_grad():
        encoder.conv_out.weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(latents(pipe, {**frames, "textured": textured}), plain, atol=1e-4)


def test_extra_type_with_a_checkpoint_is_loaded_from_it(shared_weights, weights_dir):
    state = torch.load(weights_dir / "champ" / "guidance_encoder_normal.pth", weights_only=True)
    torch.save(state, weights_dir / "champ" / "guidance_encoder_textured.pth")
    pipe = load_generator(WeightsFolder.resolve(weights_dir), (*CHAMP_GUIDANCE_TYPES, "textured"))
    loaded = pipe.model.guidance_encoders["textured"].state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert "guidance_encoder_textured.pth" in pipe.load_report.files


# ------------------------------------------------------------------------ official-code checkpoints


def test_parity_fixture_checkpoints_form_a_weights_folder(guidance_dir, reference_image, tmp_path):
    """The parity fixtures (checkpoints written by the official code, ``vae/``, ``configs/``) load as a weights folder."""
    if not PARITY_FIXTURES.is_dir():
        pytest.skip(f"Champ parity fixtures not found at {PARITY_FIXTURES}")
    out = tmp_path / "parity.mp4"
    config = {**FAST, "steps": 1}
    generate_video(GuidanceFolder(guidance_dir), reference_image, PARITY_FIXTURES, out, fps=FPS, config=config, progress=False)
    assert open_frames(out).num_frames == NUM_FRAMES


# ------------------------------------------------------------------------ command line


def test_animate_command_with_the_champ_generator(shared_weights, body, tmp_path):
    if not (REPO_ROOT / "champ3d" / "commands" / "animate.py").is_file():
        pytest.skip("champ3d animate is not part of this tree yet")
    from champ3d.demo import synthesise_inputs

    ref, driving = synthesise_inputs(tmp_path / "inputs", body)
    settings = tmp_path / "fast.yaml"
    settings.write_text(yaml.safe_dump(FAST))
    out = tmp_path / "animation"
    cmd = [sys.executable, "-m", "champ3d.cli", "animate", "--generator", "champ", "--weights", str(shared_weights),
           "--ref", str(ref), "--driving", str(driving), "--max-frames", "4", "--size", "64",
           "--generator-config", str(settings), "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    video = open_frames(out / "animation.mp4")
    assert video.num_frames == 4 and video.frame_rate == open_frames(driving).frame_rate
