"""Learned UV in-filling through a real diffusers inpainting pipeline with tiny random weights
saved in the diffusers folder layout (nothing downloaded)."""
import json

import cv2
import numpy as np
import pytest
import torch

from champ3d.errors import Champ3dInputError
from texture.atlas import UVAtlas
from texture.bake import TextureSample
from texture.learned_infill import LearnedInfiller, LearnedInfillSettings

SETTINGS = LearnedInfillSettings(resolution=32, steps=2, guidance_scale=1.0, gutter=2)


def tiny_tokenizer():
    from transformers import CLIPTokenizer

    special = ["<|startoftext|>", "<|endoftext|>"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {token: i for i, token in enumerate(special + letters + [f"{c}</w>" for c in letters])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)


def save_tiny_inpainting_pipeline(folder):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1,
        projection_dim=16,
    ))
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=9, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8,
    )
    pipeline = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=DDIMScheduler(steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_inpaint")
    save_tiny_inpainting_pipeline(folder)
    return folder


@pytest.fixture(scope="module")
def atlas(body):
    return UVAtlas.from_body(body, 64, cache=False)


def test_saved_folder_has_the_diffusers_layout(checkpoint):
    index = json.loads((checkpoint / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInpaintPipeline"
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (checkpoint / part).is_dir()
    assert json.loads((checkpoint / "unet" / "config.json").read_text())["in_channels"] == 9


def test_fills_every_island_texel_and_keeps_seen_texels(checkpoint, atlas):
    rng = np.random.default_rng(0)
    islands = atlas.island_mask
    seen = islands & (rng.random(islands.shape) < 0.5)
    colour = np.where(seen[..., None], rng.random(islands.shape + (3,)), 0.0).astype(np.float32)
    sample = TextureSample(colour, seen.astype(np.float32))

    texture = LearnedInfiller(checkpoint)(sample, atlas, SETTINGS)

    assert texture.dtype == np.uint8 and texture.shape == (64, 64, 3)
    np.testing.assert_array_equal(texture[seen], (colour[seen] * 255 + 0.5).astype(np.uint8))
    holes = islands & ~seen
    # random weights produce some image; what matters is that holes came from the model
    # (not left black) and that the result is deterministic for a seed
    assert texture[holes].any(axis=1).mean() > 0.9
    again = LearnedInfiller(checkpoint)(sample, atlas, SETTINGS)
    np.testing.assert_array_equal(texture, again)


def test_missing_or_wrong_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(Champ3dInputError, match="does not exist"):
        LearnedInfiller(tmp_path / "nowhere")
    with pytest.raises(Champ3dInputError, match="model_index.json"):
        LearnedInfiller(tmp_path)


def test_orbit_fills_the_texture_with_the_configured_model(checkpoint, body, real_fixtures, tmp_path):
    """``--infill-weights`` on a real photo: the photo's texels are the weight-free run's, the
    rest come from the model."""
    from champ3d.cli import main
    from champ3d.fitting.fit_io import load_fit
    from champ3d.io.images import read_image
    from texture.bake import bake_texture

    photo = real_fixtures / "images" / "deepfashion_00004955.jpg"
    common = ["--views", "2", "--size", "96", "--atlas-size", "256"]
    assert main(["orbit", "--ref", str(photo), "--out", str(tmp_path / "free")] + common) == 0
    assert main(["orbit", "--ref", str(photo), "--out", str(tmp_path / "learned"), "--infill-weights",
                 str(checkpoint)] + common) == 0
    free, learned = (cv2.imread(str(tmp_path / name / "texture.png")) for name in ("free", "learned"))
    fit, detections, _ = load_fit(tmp_path / "learned" / "fits" / "reference")
    with torch.no_grad():
        vertices = body(fit.params).vertices[0].numpy()
    atlas = UVAtlas.from_body(body, 256)
    seen = bake_texture(read_image(photo), detections.full_mask(0), vertices, fit.camera, atlas).seen
    holes = atlas.island_mask & ~seen
    assert seen.mean() > 0.2 and holes.mean() > 0.2
    np.testing.assert_array_equal(learned[seen], free[seen])
    assert np.any(learned[holes] != free[holes], axis=-1).mean() > 0.9
    assert (tmp_path / "learned" / "orbit.mp4").is_file()
