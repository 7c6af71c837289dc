"""Champ training, both stages, on tiny random-weight networks and the mannequin clip.

Starting weights are written in the layouts users bring (an SD1.5-style ``unet`` folder, a
diffusers VAE folder, a CLIP vision folder, an AnimateDiff-style motion-module file), so the
trainer's real loading path runs. Overfitting: each stage trains on one fixed batch of two
samples, every step with the same noise, timesteps, latent samples and condition-drop draw
(one fixed generator), so the loss curve measures learning rather than sampling noise.
Resume runs the real training loop (random draws) through the command line.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from champ_tiny import TINY_ADDITIONAL, TINY_GUIDANCE, TINY_UNET, one_intra_op_thread, tiny_clip, tiny_config, tiny_vae  # noqa: F401
from safetensors.torch import load_file, save_file
from test_train_data import build_mannequin_clip
from torch.utils.data import default_collate

from champ3d.cli import main as cli_main
from champ3d.errors import Champ3dInputError
from champ3d.generators.champ import WeightsFolder, generate_video
from champ3d.io import open_frames
from champ3d.models import CHAMP_GUIDANCE_TYPES, ChampModel, ChampModelConfig, load_champ_model
from champ3d.models.config import GUIDANCE_ENCODER_KWARGS_FILE, UNET_ADDITIONAL_KWARGS_FILE, UNET_CONFIG_FILE
from champ3d.train.checkpoints import save_weights_folder
from champ3d.train.clips import TrainingClip
from champ3d.train.config import CheckpointConfig, DataConfig, ModelConfig, SolverConfig, TrainConfig, config_yaml
from champ3d.train.networks import enable_gradient_checkpointing
from champ3d.train.trainer import LOSS_LOG, ChampTrainer

OVERFIT_STEPS = {1: 24, 2: 30}
LEARNING_RATE = 1e-3


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory, body) -> Path:
    return build_mannequin_clip(tmp_path_factory.mktemp("mannequin"), body)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict[str, Path]:
    """Starting weights in the users' layouts, from networks with their default initialisation."""
    root = tmp_path_factory.mktemp("pretrained")
    configs = root / "configs"
    configs.mkdir()
    for name, data in ((UNET_CONFIG_FILE, TINY_UNET), (UNET_ADDITIONAL_KWARGS_FILE, TINY_ADDITIONAL), (GUIDANCE_ENCODER_KWARGS_FILE, TINY_GUIDANCE)):
        (configs / name).write_text(json.dumps(data))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        full = ChampModel(tiny_config())
    # SD1.5's unet folder: the 2-D UNet under SD1.5 key names, i.e. the denoising UNet without motion modules.
    unet = root / "unet"
    unet.mkdir()
    (unet / "config.json").write_text(json.dumps(TINY_UNET))
    sd_state = {k: v for k, v in full.denoising_unet.state_dict().items() if "motion_modules." not in k}
    save_file(sd_state, str(unet / "diffusion_pytorch_model.safetensors"))
    # AnimateDiff's mm_sd_v15_v2.ckpt: a torch.save dict of the motion-module tensors.
    motion = {k: v for k, v in full.denoising_unet.state_dict().items() if "motion_modules." in k}
    torch.save(motion, root / "mm_tiny.ckpt")
    tiny_vae(1).save_pretrained(root / "vae")
    tiny_clip(2).save_pretrained(root / "image_encoder")
    return {"configs": configs, "unet": unet, "motion": root / "mm_tiny.ckpt", "vae": root / "vae", "clip": root / "image_encoder"}


def tiny_train_config(stage: int, clip_dir: Path, pretrained: dict, output_dir: Path, **solver) -> TrainConfig:
    return TrainConfig(
        stage=stage,
        seed=0,
        output_dir=str(output_dir),
        data=DataConfig(clips=[str(clip_dir)], image_size=[64, 48], sample_margin=4, num_frames=4, frame_stride=2, num_workers=0),
        model=ModelConfig(
            config_dir=str(pretrained["configs"]),
            pretrained_unet_dir=str(pretrained["unet"]),
            motion_module_path=str(pretrained["motion"]),
            vae_dir=str(pretrained["vae"]),
            image_encoder_dir=str(pretrained["clip"]),
        ),
        solver=SolverConfig(**{"batch_size": 2, "mixed_precision": "no", "learning_rate": LEARNING_RATE, "lr_warmup_steps": 0, **solver}),
        checkpoint=CheckpointConfig(checkpointing_steps=1000, save_weights_steps=1000),
    )


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def overfit(trainer: ChampTrainer, steps: int) -> list[float]:
    batch = default_collate([trainer.dataset[n] for n in range(2)])
    return [trainer.train_step(batch, torch.Generator().manual_seed(0), step)[0] for step in range(steps)]


@pytest.fixture(scope="module")
def stage1(clip_dir, pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage1")
    trainer = ChampTrainer(tiny_train_config(1, clip_dir, pretrained, out))
    before = {"model": snapshot(trainer.champ_model), "vae": snapshot(trainer.vae), "clip": snapshot(trainer.clip)}
    losses = overfit(trainer, OVERFIT_STEPS[1])
    weights = trainer.save_weights(OVERFIT_STEPS[1])
    return {"trainer": trainer, "before": before, "losses": losses, "weights": weights}


@pytest.fixture(scope="module")
def stage2(stage1, clip_dir, pretrained, tmp_path_factory):
    config = tiny_train_config(2, clip_dir, pretrained, tmp_path_factory.mktemp("stage2"), batch_size=1)
    config.model.stage1_weights_dir = str(stage1["weights"])
    trainer = ChampTrainer(config)
    before = snapshot(trainer.champ_model)
    losses = overfit(trainer, OVERFIT_STEPS[2])
    return {"trainer": trainer, "before": before, "losses": losses, "weights": trainer.save_weights(OVERFIT_STEPS[2])}


def changed(before: dict, after: dict, keys) -> set[str]:
    return {k for k in keys if not torch.equal(before[k], after[k])}


def test_stage1_overfits_a_tiny_batch(stage1):
    losses = stage1["losses"]
    print(f"stage 1 loss {losses[0]:.4f} -> {losses[-1]:.4f} in {len(losses)} steps")
    assert losses[-1] <= 0.5 * losses[0]


def test_stage1_trains_what_champ_trains(stage1):
    model = stage1["trainer"].champ_model
    before, after = stage1["before"]["model"], snapshot(model)
    last_up = f"reference_unet.up_blocks.{len(model.reference_unet.up_blocks) - 1}."
    reference = [k for k in after if k.startswith("reference_unet.")]
    assert not changed(before, after, [k for k in reference if k.startswith(last_up)])
    assert changed(before, after, [k for k in reference if not k.startswith(last_up)])
    assert changed(before, after, [k for k in after if k.startswith("denoising_unet.")])
    for name in CHAMP_GUIDANCE_TYPES:
        # Zero-initialised output conv, trained away from zero.
        assert not before[f"guidance_encoders.{name}.conv_out.weight"].any()
        assert after[f"guidance_encoders.{name}.conv_out.weight"].any()
    for frozen in ("vae", "clip"):
        module = getattr(stage1["trainer"], frozen)
        assert not changed(stage1["before"][frozen], snapshot(module), snapshot(module))


def test_stage1_weights_load_back_in_champ_layout(stage1, pretrained):
    checkpoints = stage1["weights"] / "champ"
    expected = {f"{stem}.safetensors" for stem in ("denoising_unet", "reference_unet", "motion_module")}
    assert {p.name for p in checkpoints.iterdir()} == expected | {f"guidance_encoder_{t}.safetensors" for t in CHAMP_GUIDANCE_TYPES}
    assert load_file(str(checkpoints / "motion_module.safetensors")) == {}  # stage 1 has no motion modules
    weights = WeightsFolder.resolve(stage1["weights"])  # what champ3d animate reads
    assert weights.champ == checkpoints and weights.model_config.unet_additional_kwargs["use_motion_module"] is False
    assert weights.vae.resolve() == pretrained["vae"].resolve()
    assert weights.image_encoder.resolve() == pretrained["clip"].resolve()
    loaded, report = load_champ_model(checkpoints, weights.model_config)
    assert report.complete
    trained = stage1["trainer"].champ_model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in loaded.state_dict().items())


def test_stage2_overfits_a_tiny_batch(stage2):
    losses = stage2["losses"]
    print(f"stage 2 loss {losses[0]:.4f} -> {losses[-1]:.4f} in {len(losses)} steps")
    assert losses[-1] <= 0.5 * losses[0]


def test_stage2_trains_only_the_motion_modules(stage1, stage2):
    before, after = stage2["before"], snapshot(stage2["trainer"].champ_model)
    motion = [k for k in after if "motion_modules." in k]
    assert changed(before, after, [k for k in motion if "pos_encoder" not in k])
    assert not changed(before, after, [k for k in after if k not in motion])
    # Everything else starts from (and keeps) the stage-1 result.
    stage1_state = stage1["trainer"].champ_model.state_dict()
    assert all(torch.equal(after[k], stage1_state[k]) for k in after if k not in motion)


def test_stage2_weights_are_a_complete_champ_weights_folder(stage2, pretrained):
    weights = WeightsFolder.resolve(stage2["weights"])
    assert weights.model_config.unet_additional_kwargs == TINY_ADDITIONAL
    model, report = load_champ_model(weights.champ, weights.model_config)
    assert report.complete
    trained = stage2["trainer"].champ_model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())


def test_stage2_weights_animate_the_clip(stage2, clip_dir, tmp_path):
    clip = TrainingClip(clip_dir, CHAMP_GUIDANCE_TYPES)
    settings = {"steps": 2, "context_frames": 4, "context_overlap": 2, "device": "cpu"}
    out = generate_video(clip.guidance, clip.image(0), stage2["weights"], tmp_path / "out.mp4", fps=12, config=settings, progress=False)
    video = open_frames(out)
    assert (video.num_frames, video.size) == (clip.num_frames, clip.size)


def test_pth_weights_hold_plain_tensors(stage2, tmp_path, pretrained):
    folder = save_weights_folder(stage2["trainer"].champ_model, tmp_path / "weights", "pth", pretrained["vae"], pretrained["clip"])
    assert {p.suffix for p in (folder / "champ").iterdir()} == {".pth"}
    state = torch.load(folder / "champ" / "motion_module.pth", weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    _, report = load_champ_model(folder / "champ", ChampModelConfig.from_dir(pretrained["configs"]))
    assert report.complete


def losses_logged(output_dir: Path) -> dict[int, float]:
    lines = (output_dir / LOSS_LOG).read_text().splitlines()
    return {entry["step"]: entry["loss"] for entry in map(json.loads, lines)}


def test_resume_continues_the_loss_curve(clip_dir, pretrained, tmp_path):
    config = tiny_train_config(1, clip_dir, pretrained, tmp_path / "whole", batch_size=1, gradient_accumulation_steps=2, max_train_steps=4)
    config.checkpoint = CheckpointConfig(checkpointing_steps=2, save_weights_steps=4)
    whole = dict(ChampTrainer(config).train())
    assert sorted(whole) == [1, 2, 3, 4] and (tmp_path / "whole" / "checkpoint-2").is_dir()

    config_file = tmp_path / "tiny_stage1.yaml"
    config_file.write_text(config_yaml(config))
    resumed_dir = tmp_path / "resumed"
    argv = ["train", "--config", str(config_file), "--resume", str(tmp_path / "whole" / "checkpoint-2"), f"output_dir={resumed_dir}"]
    assert cli_main(argv) == 0
    resumed = losses_logged(resumed_dir)
    print("uninterrupted", whole, "resumed", resumed)
    assert sorted(resumed) == [3, 4]
    for step in (3, 4):
        assert resumed[step] == pytest.approx(whole[step], rel=1e-5, abs=1e-7)
    final_whole = load_file(str(tmp_path / "whole" / "weights-4" / "champ" / "denoising_unet.safetensors"))
    final_resumed = load_file(str(resumed_dir / "weights-4" / "champ" / "denoising_unet.safetensors"))
    assert all(torch.allclose(final_resumed[k], v, rtol=1e-5, atol=1e-7) for k, v in final_whole.items())


def test_resume_refuses_another_stage_and_missing_checkpoints(stage2, tmp_path, monkeypatch):
    trainer = stage2["trainer"]
    monkeypatch.setattr(trainer, "output_dir", tmp_path / "run")
    checkpoint = trainer.save_checkpoint(7)
    (checkpoint / "training_state.json").write_text(json.dumps({"step": 7, "stage": 1}))
    with pytest.raises(Champ3dInputError, match="checkpoint of stage 1, the config trains stage 2"):
        trainer.load_checkpoint(tmp_path / "run")
    with pytest.raises(Champ3dInputError, match="no checkpoint here"):
        trainer.load_checkpoint(tmp_path)


def test_missing_starting_weights_are_named(stage1, clip_dir, pretrained, tmp_path):
    config = tiny_train_config(1, clip_dir, pretrained, tmp_path)
    config.model.pretrained_unet_dir = str(tmp_path)
    with pytest.raises(Champ3dInputError, match="no SD1.5 UNet weights"):
        ChampTrainer(config)
    config = tiny_train_config(2, clip_dir, pretrained, tmp_path)
    config.model.stage1_weights_dir = str(stage1["weights"])
    partial = tmp_path / "mm_partial.ckpt"
    state = torch.load(pretrained["motion"], weights_only=True)
    torch.save(dict(list(state.items())[1:]), partial)
    config.model.motion_module_path = str(partial)
    with pytest.raises(Champ3dInputError, match="mm_partial.ckpt: 1 tensors of the denoising_unet are in no file"):
        ChampTrainer(config)


def test_gradient_checkpointing_keeps_the_gradients_and_frees_activations():
    torch.manual_seed(0)
    model = ChampModel(tiny_config())
    gen = torch.Generator().manual_seed(1)
    frames, h, w = 3, 8, 6
    inputs = (
        torch.randn(1, 4, frames, h, w, generator=gen),
        torch.tensor([500]),
        torch.randn(1, 4, h, w, generator=gen),
        torch.randn(1, 1, TINY_UNET["cross_attention_dim"], generator=gen),
        {name: torch.rand(1, 3, frames, 8 * h, 8 * w, generator=gen) for name in model.guidance_types},
    )

    def gradients():
        model.zero_grad(set_to_none=True)
        model(*inputs).model_pred.square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    def denoising_activations_kept() -> int:
        kept = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t.numel()) or t, lambda t: t):
            model.denoising_unet(inputs[0], inputs[1], inputs[3])
        return sum(kept)

    plain, plain_kept = gradients(), denoising_activations_kept()
    enable_gradient_checkpointing(model)
    checkpointed, checkpointed_kept = gradients(), denoising_activations_kept()
    assert plain.keys() == checkpointed.keys()
    assert all(torch.allclose(checkpointed[n], g, rtol=1e-4, atol=1e-7) for n, g in plain.items())
    print(f"denoising UNet keeps {checkpointed_kept} of {plain_kept} saved elements with checkpointing")
    assert checkpointed_kept < 0.25 * plain_kept
