"""Parity with the official Champ code on the shipped parity fixtures.

Implements the test contract of the fixtures' README (tests A1-A5: one ``ChampModel``
forward; B1-B6: the long-video pipeline), against the official fp16-rounded reference bank
(``model_pred``, ``final_latents``). Every size and setting comes from the fixture folder
(``CHAMP3D_PARITY_FIXTURES``, default ``../shared/parity/champ/fixtures`` from the repo root);
the tests skip when it is absent. Also covers the context-window schedules and the
pipeline's batching/caching options, which must not change the result.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from champ3d.errors import Champ3dInputError
from champ3d.models import ChampModelConfig, load_champ_model
from champ3d.pipelines import ArrayGuidanceSource, ChampPipeline, SlidingSchedule, UniformSchedule, make_context_schedule
from champ_tiny import one_intra_op_thread  # noqa: F401 (autouse fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("CHAMP3D_PARITY_FIXTURES", REPO_ROOT / ".." / "shared" / "parity" / "champ" / "fixtures"))

# Max-abs tolerances of the fixtures' test contract.
TOL_FEATURES = 1e-5  # A1-A5, B2, B4
TOL_LATENTS = 3e-5  # B5
TOL_FP16_STORED = 2e-3  # B1, B6


def max_abs(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert tuple(actual.shape) == tuple(expected.shape), f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    return (actual.float() - expected.float()).abs().max().item()


# ----------------------------------------------------------------------------- fixture data


@pytest.fixture(scope="module")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"Champ parity fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="module")
def run_config(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "configs" / "run.json").read_text())


@pytest.fixture(scope="module")
def model_config(fixtures_dir) -> ChampModelConfig:
    return ChampModelConfig.from_dir(fixtures_dir / "configs")


@pytest.fixture(scope="module")
def data(fixtures_dir) -> dict[str, dict[str, torch.Tensor]]:
    names = ("guidance_inputs", "forward_inputs", "forward_outputs", "pipeline_inputs", "pipeline_outputs")
    return {name: load_file(fixtures_dir / f"{name}.safetensors") for name in names}


@pytest.fixture(scope="module")
def model(fixtures_dir, model_config, run_config):
    """The fixture checkpoints through the normal loader; they must cover the model exactly."""
    model, report = load_champ_model(fixtures_dir / "champ", model_config, run_config["guidance_types"])
    assert report.complete, report.summary()
    assert not any(cov.overridden for cov in report.files.values()), "denoising_unet and motion_module overlap"
    return model


def test_manifest_checksums_and_shapes(fixtures_dir, data):
    manifest = json.loads((fixtures_dir / "manifest.json").read_text())
    for rel, entry in manifest["files"].items():
        assert hashlib.sha256((fixtures_dir / rel).read_bytes()).hexdigest() == entry["sha256"], rel
    for group, tensors in manifest["tensors"].items():
        for name, (shape, dtype) in tensors.items():
            assert list(data[group][name].shape) == shape, f"{group}.{name}"
            assert str(data[group][name].dtype) == dtype, f"{group}.{name}"


# ----------------------------------------------------------------------------- test A: one forward


def official_guidance_layout(guidance_inputs, types, frames: int, channels: int) -> dict[str, torch.Tensor]:
    """float(uint8)/255 as (1, 3, F, H, W) per type, concatenated along channels, split back per type.

    This is how ``ChampModel.forward`` receives its guidance; the tensor layout matters for
    CPU GroupNorm numerics (see ``champ3d.models.unet_3d.fold_frames``).
    """
    per_type = [(guidance_inputs[f"guidance_uint8_{t}"][:frames].float() / 255.0).permute(3, 0, 1, 2).unsqueeze(0) for t in types]
    return dict(zip(types, torch.cat(per_type, dim=1).split(channels, dim=1)))


@pytest.fixture(scope="module")
def forward_group(run_config) -> list[str]:
    return run_config["forward"].get("guidance_types", run_config["guidance_types"])


@pytest.fixture(scope="module")
def forward_official(model, data, run_config, forward_group, model_config):
    fi = data["forward_inputs"]
    frames = run_config["forward"]["frames"]
    assert fi["noisy_latents"].shape[2] == frames
    guidance = official_guidance_layout(data["guidance_inputs"], forward_group, frames, model_config.guidance_spec().input_channels)
    with torch.no_grad():
        return model(fi["noisy_latents"], fi["timesteps"], fi["ref_image_latents"], fi["clip_image_embeds"], guidance)


def test_a1_guidance_features_per_type(model, data, run_config, model_config):
    fo = data["forward_outputs"]
    types = run_config["guidance_types"]
    guidance = official_guidance_layout(data["guidance_inputs"], types, run_config["forward"]["frames"], model_config.guidance_spec().input_channels)
    with torch.no_grad():
        for name in types:
            assert max_abs(model.guidance_encoders[name](guidance[name]), fo[f"guidance_fea_{name}"]) <= TOL_FEATURES, name


def test_a2_guidance_feature_sum(forward_official, data):
    assert max_abs(forward_official.guidance_fea, data["forward_outputs"]["guidance_fea_sum"]) <= TOL_FEATURES


def test_a3_reference_bank(forward_official, data):
    expected = {k[len("ref_bank.") :]: v for k, v in data["forward_outputs"].items() if k.startswith("ref_bank.")}
    assert expected and set(forward_official.reference_bank) == set(expected)
    for path, tensor in expected.items():
        assert max_abs(forward_official.reference_bank[path], tensor) <= TOL_FEATURES, path


def test_a4_model_pred_with_official_fp16_bank(forward_official, data):
    assert max_abs(forward_official.model_pred, data["forward_outputs"]["model_pred"]) <= TOL_FEATURES


def test_a4_bank_in_compute_dtype_matches_fp32_bank_output(model, data, run_config, forward_group, model_config):
    fi = data["forward_inputs"]
    guidance = official_guidance_layout(
        data["guidance_inputs"], forward_group, run_config["forward"]["frames"], model_config.guidance_spec().input_channels
    )
    model.bank_dtype = None
    try:
        with torch.no_grad():
            out = model(fi["noisy_latents"], fi["timesteps"], fi["ref_image_latents"], fi["clip_image_embeds"], guidance)
    finally:
        model.bank_dtype = torch.float16
    assert max_abs(out.model_pred, data["forward_outputs"]["model_pred_bank_fp32"]) <= TOL_FEATURES
    # The two bank variants are told apart at this tolerance.
    assert max_abs(out.model_pred, data["forward_outputs"]["model_pred"]) > TOL_FEATURES


def test_a5_unconditional_forward(model, data, run_config, forward_group, model_config):
    fi = data["forward_inputs"]
    guidance = official_guidance_layout(
        data["guidance_inputs"], forward_group, run_config["forward"]["frames"], model_config.guidance_spec().input_channels
    )
    with torch.no_grad():
        out = model(fi["noisy_latents"], fi["timesteps"], fi["ref_image_latents"], fi["clip_image_embeds"], guidance, uncond_fwd=True)
    assert out.reference_bank == {}
    assert max_abs(out.model_pred, data["forward_outputs"]["model_pred_uncond_fwd"]) <= TOL_FEATURES


# ----------------------------------------------------------------------------- test B: the pipeline


@pytest.fixture(scope="module")
def pipeline(fixtures_dir, model_config, run_config) -> ChampPipeline:
    pipe = ChampPipeline.from_weights_dir(
        fixtures_dir / "champ",
        vae_dir=fixtures_dir / "vae",
        image_encoder_dir=fixtures_dir / "image_encoder",
        config=model_config,
        scheduler_config=fixtures_dir / "configs" / "scheduler_config.json",
        guidance_types=run_config["guidance_types"],
    )
    assert pipe.load_report is not None and pipe.load_report.complete
    return pipe


def guidance_source(data, run_config) -> ArrayGuidanceSource:
    gi = data["guidance_inputs"]
    source = ArrayGuidanceSource({t: gi[f"guidance_uint8_{t}"].numpy() for t in run_config["guidance_types"]})
    assert len(source) == run_config["pipeline"]["video_length"]
    return source


def pipeline_kwargs(run_config, data) -> dict:
    p = run_config["pipeline"]
    return dict(
        width=p["width"],
        height=p["height"],
        num_inference_steps=p["num_inference_steps"],
        guidance_scale=p["guidance_scale"],
        context_schedule=make_context_schedule(p["context_schedule"], p["context_frames"], p["context_overlap"], p["context_stride"]),
        context_batch_size=p["context_batch_size"],
        eta=p["eta"],
        latents=data["pipeline_inputs"]["init_latents"],
    )


@pytest.fixture(scope="module")
def pipeline_run(pipeline, data, run_config):
    """One official-settings pipeline run, recording what the real code path computed."""
    seen: dict = {"unet_calls": 0, "steps": []}

    def on_clip(module, args, output):
        seen.setdefault("clip", (args[0], output))

    def on_reference(module, args, output):
        assert "reference" not in seen, "the reference UNet must run once per video"
        seen["reference"] = args

    def on_unet(module, args, output):
        seen["unet_calls"] += 1
        seen.setdefault("first_call", (args, output))

    hooks = [
        pipeline.clip.register_forward_hook(on_clip),
        pipeline.model.reference_unet.register_forward_hook(on_reference),
        pipeline.model.denoising_unet.register_forward_hook(on_unet),
    ]
    try:
        out = pipeline(
            data["guidance_inputs"]["ref_image_uint8"].numpy(),
            guidance_source(data, run_config),
            step_callback=lambda i, t, latents: seen["steps"].append(latents.clone()),
            **pipeline_kwargs(run_config, data),
        )
    finally:
        for hook in hooks:
            hook.remove()
    return out, seen


def test_b1_clip_pixel_values(pipeline_run, data):
    _, seen = pipeline_run
    assert max_abs(seen["clip"][0], data["pipeline_outputs"]["clip_pixel_values"]) <= TOL_FP16_STORED


def test_b2_clip_embeds_and_reference_unet_inputs(pipeline_run, data):
    _, seen = pipeline_run
    po = data["pipeline_outputs"]
    assert max_abs(seen["clip"][1][:, 0], po["clip_image_embeds"]) <= TOL_FEATURES
    ref_latents, ref_timestep, ref_context = seen["reference"]
    assert int(ref_timestep) == 0
    # The official reference UNet runs on [uncond ; cond] = [zero token ; CLIP]; only the
    # conditional row's bank is ever read, so this pipeline runs that row alone.
    assert max_abs(po["ref_encoder_hidden_states"][:1], torch.zeros_like(ref_context)) == 0.0
    assert max_abs(ref_context, po["ref_encoder_hidden_states"][1:]) <= TOL_FEATURES
    for row in po["ref_image_latents_x2"]:
        assert max_abs(ref_latents, row.unsqueeze(0)) <= TOL_FEATURES


def test_b3_timesteps(pipeline, pipeline_run, data):
    _, seen = pipeline_run
    po = data["pipeline_outputs"]
    assert torch.equal(pipeline.scheduler.timesteps.cpu(), po["timesteps_used"])
    first_t = seen["first_call"][0][1]
    assert torch.equal(torch.as_tensor(first_t).reshape(1).to(torch.int64), po["first_call.timestep"])


def test_b4_first_denoising_call(pipeline_run, data):
    _, seen = pipeline_run
    po = data["pipeline_outputs"]
    (sample, _, context, guidance_fea, _), noise_pred = seen["first_call"]
    assert max_abs(sample, po["first_call.latent_model_input"]) <= TOL_FEATURES
    assert max_abs(context, po["first_call.encoder_hidden_states"]) <= TOL_FEATURES
    assert max_abs(guidance_fea, po["first_call.guidance_fea"]) <= TOL_FEATURES
    assert max_abs(noise_pred, po["first_call.noise_pred"]) <= TOL_FEATURES


def test_b5_latents_after_every_step(pipeline_run, data, run_config):
    out, seen = pipeline_run
    po = data["pipeline_outputs"]
    steps = run_config["pipeline"]["num_inference_steps"]
    assert len(seen["steps"]) == steps
    for i in range(steps):
        assert max_abs(seen["steps"][i], po[f"latents_after_step_{i}"]) <= TOL_LATENTS, f"step {i}"
    assert max_abs(out.latents, po["final_latents"]) <= TOL_LATENTS


def test_b6_video(pipeline_run, data):
    out, _ = pipeline_run
    assert max_abs(out.video, data["pipeline_outputs"]["video"]) <= TOL_FP16_STORED


def test_b5_bank_in_compute_dtype_matches_fp32_bank_final_latents(pipeline, data, run_config):
    pipeline.model.bank_dtype = None
    try:
        latents = pipeline.generate_latents(
            data["guidance_inputs"]["ref_image_uint8"].numpy(), guidance_source(data, run_config), **pipeline_kwargs(run_config, data)
        )
    finally:
        pipeline.model.bank_dtype = torch.float16
    assert max_abs(latents, data["pipeline_outputs"]["final_latents_bank_fp32"]) <= TOL_LATENTS


# ----------------------------------------------------------------------------- options that must not change results


def test_uncached_guidance_and_batched_windows_give_the_same_step(pipeline, data, run_config):
    """One DDIM step with every window batch/caching combination equals the reference run's first step."""
    ref_image = data["guidance_inputs"]["ref_image_uint8"].numpy()
    kwargs = pipeline_kwargs(run_config, data)
    expected = data["pipeline_outputs"]["latents_after_step_0"]
    num_windows = len(kwargs["context_schedule"](run_config["pipeline"]["video_length"]))
    for cache, batch in ((False, kwargs["context_batch_size"]), (True, num_windows)):
        steps = []
        pipeline.generate_latents(
            ref_image,
            guidance_source(data, run_config),
            **{**kwargs, "context_batch_size": batch},
            cache_guidance_features=cache,
            step_callback=lambda i, t, latents: steps.append(latents.clone()) if i == 0 else None,
        )
        assert max_abs(steps[0], expected) <= TOL_LATENTS, f"cache={cache} batch={batch}"


# ----------------------------------------------------------------------------- context schedules


def test_uniform_schedule_wraps_like_champ():
    assert UniformSchedule(4, 2)(6) == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 0, 1]]
    windows = UniformSchedule(24, 4)(100)
    assert [w[0] for w in windows] == [0, 20, 40, 60, 80]
    assert windows[-1] == list(range(80, 100)) + [0, 1, 2, 3]
    assert UniformSchedule(24, 4)(24) == [list(range(24))]


@pytest.mark.parametrize("num_frames", [1, 23, 24, 25, 45, 100, 240])
def test_sliding_schedule_never_wraps_and_covers_every_frame(num_frames):
    size, overlap = 24, 4
    windows = SlidingSchedule(size, overlap)(num_frames)
    assert sorted({f for w in windows for f in w}) == list(range(num_frames))
    for window in windows:
        assert window == list(range(window[0], window[0] + len(window)))  # contiguous, no wrap
        assert len(window) == min(size, num_frames)
    for prev, nxt in zip(windows, windows[1:]):
        assert prev[-1] - nxt[0] + 1 >= overlap
    assert windows[-1][-1] == num_frames - 1


def test_windows_longer_than_the_motion_encoding_are_refused(pipeline, data, run_config, model_config):
    max_len = model_config.unet_additional_kwargs["motion_module_kwargs"]["temporal_position_encoding_max_len"]
    gi = data["guidance_inputs"]
    frames = max_len + 1
    looped = [i % run_config["pipeline"]["video_length"] for i in range(frames)]
    source = ArrayGuidanceSource({t: gi[f"guidance_uint8_{t}"].numpy()[looped] for t in run_config["guidance_types"]})
    kwargs = {**pipeline_kwargs(run_config, data), "context_schedule": SlidingSchedule(frames, 0), "latents": None}
    with pytest.raises(Champ3dInputError, match="context_frames"):
        pipeline.generate_latents(gi["ref_image_uint8"].numpy(), source, **kwargs)

