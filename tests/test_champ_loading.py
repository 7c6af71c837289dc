"""Loading Champ checkpoints: tiny random-weight models saved in Champ's own format by the test."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
import zipfile

import pytest
import torch

from champ3d.errors import Champ3dInputError
from champ3d.models import ChampModel, ChampModelConfig, convert_champ_weights, load_champ_model
from champ3d.models.loading import read_state_dict
from champ_tiny import (TINY_ADDITIONAL, TINY_GUIDANCE, TINY_UNET, one_intra_op_thread, randomised,  # noqa: F401
                        save_official_layout, tiny_config)

REPO_ROOT = Path(__file__).resolve().parents[1]
GUIDANCE_TYPES = ("depth", "normal", "semantic_map", "dwpose")


@pytest.fixture(scope="module")
def source_model() -> ChampModel:
    return randomised(ChampModel(tiny_config(), GUIDANCE_TYPES), seed=0)


@pytest.fixture()
def weights_dir(tmp_path, source_model) -> Path:
    folder = tmp_path / "champ"
    save_official_layout(source_model, folder)
    return folder


def forward_output(model: ChampModel) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    frames, h, w = 3, 4, 6
    guidance = {name: torch.rand(1, 3, frames, 8 * h, 8 * w, generator=gen) for name in model.guidance_types}
    with torch.no_grad():
        return model(
            torch.randn(1, 4, frames, h, w, generator=gen),
            torch.tensor([400]),
            torch.randn(1, 4, h, w, generator=gen),
            torch.randn(1, 1, TINY_UNET["cross_attention_dim"], generator=gen),
            guidance,
        ).model_pred


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_official_layout_loads_exactly(weights_dir, source_model):
    model, report = load_champ_model(weights_dir, tiny_config(), GUIDANCE_TYPES)
    assert report.complete and not any(report.missing.values())
    assert set(report.files) == {p.name for p in weights_dir.iterdir()}
    n_motion = len(report.files["motion_module.pth"].used)
    assert n_motion > 0 and all("motion_modules." in k for k in report.files["motion_module.pth"].used)
    assert n_motion + len(report.files["denoising_unet.pth"].used) == len(model.denoising_unet.state_dict())
    assert_same_weights(model, source_model)
    assert not model.training


def test_missing_file_is_named(weights_dir):
    (weights_dir / "guidance_encoder_dwpose.pth").unlink()
    with pytest.raises(Champ3dInputError, match="guidance_encoder_dwpose"):
        load_champ_model(weights_dir, tiny_config(), GUIDANCE_TYPES)


def test_only_requested_guidance_types_are_needed(weights_dir):
    (weights_dir / "guidance_encoder_dwpose.pth").unlink()
    model, report = load_champ_model(weights_dir, tiny_config(), ["depth", "normal"])
    assert list(model.guidance_encoders) == ["depth", "normal"]
    assert "guidance_encoder_semantic_map.pth" not in report.files


def test_wrong_shape_names_file_and_key(weights_dir):
    path = weights_dir / "reference_unet.pth"
    state = torch.load(path, weights_only=True)
    state["conv_in.weight"] = torch.zeros(7, 4, 3, 3)
    torch.save(state, path)
    with pytest.raises(Champ3dInputError) as err:
        load_champ_model(weights_dir, tiny_config(), GUIDANCE_TYPES)
    assert "reference_unet.pth" in str(err.value) and "conv_in.weight" in str(err.value)


class _RunsCodeWhenUnpickled:
    """Unpickling this object calls ``Path.touch(marker)``: the shape of a code-running checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_code_running_pickle_is_refused(weights_dir, tmp_path):
    marker = tmp_path / "unpickling_ran_code"
    state = torch.load(weights_dir / "motion_module.pth", weights_only=True)
    state["payload"] = _RunsCodeWhenUnpickled(marker)
    torch.save(state, weights_dir / "motion_module.pth")
    with pytest.raises(Champ3dInputError, match="motion_module.pth.*weights_only"):
        load_champ_model(weights_dir, tiny_config(), GUIDANCE_TYPES)
    assert not marker.exists()
    # The file really carries the payload, and the payload really runs code when unpickled.
    with zipfile.ZipFile(weights_dir / "motion_module.pth") as archive:
        pickled = b"".join(archive.read(n) for n in archive.namelist() if n.endswith("data.pkl"))
    assert b"touch" in pickled and b"_RunsCodeWhenUnpickled" not in pickled
    pickle.loads(pickle.dumps(_RunsCodeWhenUnpickled(marker)))
    assert marker.exists()


def test_non_state_dict_and_garbage_files_are_refused(weights_dir):
    torch.save(torch.zeros(3), weights_dir / "reference_unet.pth")
    with pytest.raises(Champ3dInputError, match="reference_unet.pth.*flat mapping"):
        read_state_dict(weights_dir / "reference_unet.pth")
    (weights_dir / "reference_unet.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(Champ3dInputError, match="reference_unet.pth"):
        load_champ_model(weights_dir, tiny_config(), GUIDANCE_TYPES)


def test_missing_keys_raise_unless_allowed_then_are_reported(weights_dir):
    path = weights_dir / "denoising_unet.pth"
    state = torch.load(path, weights_only=True)
    del state["conv_out.bias"]
    torch.save(state, path)
    with pytest.raises(Champ3dInputError, match="conv_out.bias"):
        load_champ_model(weights_dir, tiny_config(), GUIDANCE_TYPES)
    _, report = load_champ_model(weights_dir, tiny_config(), GUIDANCE_TYPES, allow_missing=True)
    assert report.missing["denoising_unet"] == ["conv_out.bias"]
    assert not report.complete


def test_unexpected_and_overlapping_keys_are_reported(weights_dir, source_model):
    ref = torch.load(weights_dir / "reference_unet.pth", weights_only=True)
    ref["conv_out.weight"] = torch.zeros(4, 32, 3, 3)  # SD1.5 head key the reference UNet lacks
    torch.save(ref, weights_dir / "reference_unet.pth")
    motion = torch.load(weights_dir / "motion_module.pth", weights_only=True)
    key = next(iter(motion))
    denoising = torch.load(weights_dir / "denoising_unet.pth", weights_only=True)
    denoising[key] = motion[key] + 1.0
    torch.save(denoising, weights_dir / "denoising_unet.pth")

    model, report = load_champ_model(weights_dir, tiny_config(), GUIDANCE_TYPES)
    assert report.files["reference_unet.pth"].unexpected == ["conv_out.weight"]
    assert report.files["motion_module.pth"].overridden == [key]
    assert not report.complete
    # Champ's precedence: the denoising file is loaded over the motion file.
    assert torch.equal(model.denoising_unet.state_dict()[key], motion[key] + 1.0)


def test_safetensors_round_trip_via_converter(weights_dir, tmp_path, source_model):
    out_dir = tmp_path / "converted"
    written = convert_champ_weights(weights_dir, out_dir, tiny_config(), GUIDANCE_TYPES)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(p.name for p in written)
    assert all(p.suffix == ".safetensors" for p in written) and len(written) == 3 + len(GUIDANCE_TYPES)
    model, report = load_champ_model(out_dir, tiny_config(), GUIDANCE_TYPES)
    assert report.complete and all(name.endswith(".safetensors") for name in report.files)
    assert_same_weights(model, source_model)
    assert torch.equal(forward_output(model), forward_output(source_model))


def test_safetensors_file_wins_over_pth(weights_dir, tmp_path, source_model):
    convert_champ_weights(weights_dir, weights_dir, tiny_config(), GUIDANCE_TYPES)
    (weights_dir / "reference_unet.pth").write_bytes(b"stale")  # would fail if it were read
    _, report = load_champ_model(weights_dir, tiny_config(), GUIDANCE_TYPES)
    assert "reference_unet.safetensors" in report.files and "reference_unet.pth" not in report.files


def test_convert_script(weights_dir, tmp_path, source_model):
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "unet_config.json").write_text(json.dumps(TINY_UNET))
    (config_dir / "unet_additional_kwargs.json").write_text(json.dumps(TINY_ADDITIONAL))
    (config_dir / "guidance_encoder_kwargs.json").write_text(json.dumps(TINY_GUIDANCE))
    out_dir = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "convert_champ_weights.py"), str(weights_dir), str(out_dir), "--config-dir", str(config_dir)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    model, report = load_champ_model(out_dir, ChampModelConfig.from_dir(config_dir), GUIDANCE_TYPES)
    assert report.complete
    assert_same_weights(model, source_model)


def test_sd15_configuration_has_the_released_checkpoint_layout():
    """Key and parameter counts of Champ's released files (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = ChampModel(ChampModelConfig.sd15())
    denoising = model.denoising_unet.state_dict()
    motion = {k for k in denoising if "motion_modules." in k}
    motion_params = {n: p for n, p in model.denoising_unet.named_parameters() if n in motion}
    assert (len(denoising) - len(motion), len(motion)) == (686, 588)
    assert len({k.split(".temporal_transformer.")[0] for k in motion}) == 21
    assert len(model.reference_unet.state_dict()) == 682
    assert "conv_out.weight" not in model.reference_unet.state_dict()
    assert all(len(e.state_dict()) == 149 for e in model.guidance_encoders.values())

    def millions(tensors) -> float:
        return sum(t.numel() for t in tensors) / 1e6

    assert round(millions(t for n, t in denoising.items() if n not in motion), 1) == 859.5
    assert round(millions(motion_params.values()), 1) == 453.2  # parameters; the pe buffers are extra
    assert round(millions(model.guidance_encoders["depth"].parameters()), 2) == 3.83


def test_unsupported_config_value_is_named():
    config = ChampModelConfig(unet={**TINY_UNET, "use_linear_projection": True}, unet_additional_kwargs=TINY_ADDITIONAL, guidance_encoder=TINY_GUIDANCE, source="cfg")
    with pytest.raises(Champ3dInputError, match="unet_config.json.use_linear_projection"):
        ChampModel(config)
    with pytest.raises(Champ3dInputError, match="config file not found"):
        ChampModelConfig.from_dir(REPO_ROOT / "no-such-config-dir")
