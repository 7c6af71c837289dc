"""Backbone metrics loaded from tiny random-weight networks saved in the published formats.

:func:`write_tiny_weights` writes every weights file the registry knows, under its canonical
name and in its real format (torchvision / lpips state dicts, a DataParallel-wrapped
3D-ResNet checkpoint, a plain I3D state dict, TorchScript archives), with layer widths small
enough for fast tests. The real loading code then reads them.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from champ3d.errors import Champ3dInputError
from champ3d.eval import KNOWN_WEIGHTS, METRICS, WeightsStore, frechet_distance
from champ3d.eval.features import ClipSampling
from champ3d.eval.i3d import CANONICAL_WIDTHS, InceptionI3dLogits
from champ3d.eval.lpips import TOPOLOGIES, LpipsNetwork
from champ3d.eval.registry import BuildContext
from champ3d.eval.resnet3d import ResNet3dFeatures


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """The test networks are tiny: extra threads cost more than they save, and OpenMP
    threads spin badly when the machine's cores are busy."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class TinyInception(nn.Module):
    """Stands in for ``inception-2015-12-05.pt``: a ``layers`` submodule giving pooled features."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(3, 8, 9, stride=8), nn.Tanh(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x).flatten(1)


class TinyStyleGanI3d(nn.Module):
    """Stands in for ``i3d_torchscript.pt``: refuses its internal rescale/resize, which the
    metric must switch off."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 6, (3, 15, 15), stride=(2, 16, 16))

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = False) -> torch.Tensor:
        if rescale or resize or not return_features:
            raise RuntimeError("unexpected flags")
        return torch.tanh(self.conv(x)).mean(dim=(2, 3, 4))


def _randomise_batch_norm(module: nn.Module, generator: torch.Generator) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1, generator=generator)
            m.running_var.uniform_(0.5, 1.5, generator=generator)
            m.weight.data.uniform_(0.5, 1.5, generator=generator)
            m.bias.data.normal_(0, 0.1, generator=generator)


TINY_I3D_WIDTHS = {name: tuple(max(2, w // 16) for w in widths) for name, widths in CANONICAL_WIDTHS.items()}


def tiny_lpips(backbone: str, seed: int = 0) -> LpipsNetwork:
    torch.manual_seed(seed)
    layers, _ = TOPOLOGIES[backbone]
    shapes, in_ch = [], 3
    for entry in layers:
        if entry[0] == "conv":
            kernel = 11 if backbone == "alex" and not shapes else (5 if backbone == "alex" and len(shapes) == 1 else 3)
            width = 6 if backbone == "alex" else 5
            shapes.append((width, in_ch, kernel))
            in_ch = width
    net = LpipsNetwork(backbone, shapes)
    for k in range(5):
        getattr(net, f"lin{k}").model[1].weight.data.uniform_(0.0, 1.0)
    return net.eval()


def write_tiny_weights(folder: Path) -> dict[str, object]:
    """Write tiny versions of every known weights file into ``folder``; returns the networks."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    nets: dict[str, object] = {}
    for backbone, features_file, heads_file in (("alex", "alexnet-owt-7be5be79.pth", "alex.pth"),
                                                ("vgg", "vgg16-397923af.pth", "vgg.pth")):
        net = tiny_lpips(backbone)
        state = net.state_dict()
        features = {k: v for k, v in state.items() if k.startswith("features.")}
        features["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision files carry the classifier too
        torch.save(features, folder / features_file)
        torch.save({k: v for k, v in state.items() if k.startswith("lin")}, folder / heads_file)
        nets[backbone] = net
    with warnings.catch_warnings():  # the published networks are TorchScript archives, so the test writes one
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning)
        torch.jit.script(TinyInception()).save(str(folder / "inception-2015-12-05.pt"))
        torch.jit.script(TinyStyleGanI3d()).save(str(folder / "i3d_torchscript.pt"))

    i3d = InceptionI3dLogits(TINY_I3D_WIDTHS, num_classes=7)
    _randomise_batch_norm(i3d, generator)
    torch.save({k: v for k, v in i3d.state_dict().items() if not k.endswith("num_batches_tracked")},
               folder / "i3d_pretrained_400.pt")
    nets["i3d"] = i3d.eval()

    resnet = ResNet3dFeatures(stem_width=4, planes=(2, 3, 4, 5), blocks=(1, 2, 1, 1))
    _randomise_batch_norm(resnet, generator)
    state = {f"module.{k}": v for k, v in resnet.state_dict().items()}
    state["module.fc.weight"] = torch.zeros(400, 20)
    state["module.fc.bias"] = torch.zeros(400)
    torch.save({"epoch": 200, "arch": "resnet-50", "state_dict": state}, folder / "resnet-50-kinetics.pth")
    nets["resnet"] = resnet.eval()
    return nets


def _context(folder: Path, clips=ClipSampling(16, 1)) -> BuildContext:
    return BuildContext(WeightsStore(folder), torch.device("cpu"), 4, clips)


def _frames(seed: int, n: int = 3, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return folder, write_tiny_weights(folder)


def test_every_known_weights_file_is_written(tiny):
    folder, _ = tiny
    assert sorted(p.name for p in folder.iterdir()) == sorted(KNOWN_WEIGHTS)


@pytest.mark.parametrize("name, backbone, scale", [("LPIPS_alex", "alex", "minus_one_one"),
                                                   ("LPIPS_vgg_disco", "vgg", "zero_one")])
def test_lpips_loads_and_matches_network(tiny, name, backbone, scale):
    folder, nets = tiny
    metric = METRICS[name].build(_context(folder))
    pred, gt = _frames(1), _frames(2)
    values = metric(pred, gt)
    assert values.shape == (3,) and np.all(values > 0)
    np.testing.assert_array_equal(metric(gt, gt), np.zeros(3))
    to_input = (lambda f: torch.from_numpy(f).permute(0, 3, 1, 2).float() / 255.0) if scale == "zero_one" else \
        (lambda f: torch.from_numpy(f).permute(0, 3, 1, 2).float() / 127.5 - 1.0)
    with torch.no_grad():
        expected = nets[backbone](to_input(pred), to_input(gt)).double().numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_lpips_formula_by_hand():
    """One tap of the network, written out: unit-normalise over channels, squared
    difference weighted by the head, spatial mean, summed over taps."""
    net = tiny_lpips("alex", seed=3)
    x0, x1 = torch.rand(2, 3, 40, 40) * 2 - 1, torch.rand(2, 3, 40, 40) * 2 - 1
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    h0, h1, total = (x0 - shift) / scale, (x1 - shift) / scale, torch.zeros(2)
    taps = TOPOLOGIES["alex"][1]
    k = 0
    for index, module in enumerate(net.features):
        h0, h1 = module(h0), module(h1)
        if index in taps:
            n0 = h0 / (h0.norm(dim=1, keepdim=True) + 1e-10)
            n1 = h1 / (h1.norm(dim=1, keepdim=True) + 1e-10)
            w = getattr(net, f"lin{k}").model[1].weight.view(1, -1, 1, 1)
            total += ((n0 - n1) ** 2 * w).sum(dim=1).mean(dim=(1, 2))
            k += 1
    with torch.no_grad():
        torch.testing.assert_close(net(x0, x1), total.detach(), rtol=1e-5, atol=1e-7)


def test_fid_identical_inputs_give_zero_and_differs_by_resize(tiny):
    folder, _ = tiny
    frames_a, frames_b = _frames(3, n=6), _frames(4, n=6)
    rows = {}
    for name in ("FID_pytorchfid", "FID_clean"):
        make = METRICS[name].build(_context(folder))
        pred, gt = make(), make()
        pred.add_frames(frames_a)
        gt.add_frames(frames_a)
        fa, fb = pred.end_video(), gt.end_video()
        assert fa.shape == (6, 8)
        assert abs(frechet_distance(fa, fb)) < 1e-10
        gt.add_frames(frames_b)
        assert frechet_distance(fa, gt.end_video()) > 1e-6
        rows[name] = fa
    assert not np.allclose(rows["FID_pytorchfid"], rows["FID_clean"])  # the two resizes differ


@pytest.mark.parametrize("name, dim", [("FID_VID_3drn50", 20), ("FVD_i3d_disco", 7), ("FVD_styleganv", 6)])
def test_clip_metrics_window_shapes(tiny, name, dim):
    folder, _ = tiny
    make = METRICS[name].build(_context(folder, ClipSampling(length=16, stride=1)))
    extractor = make()
    video = _frames(5, n=20, size=48)
    extractor.add_frames(video[:7])
    extractor.add_frames(video[7:])  # chunks of one video are joined before windowing
    rows = extractor.end_video()
    assert rows.shape == (20 - 16 + 1, dim)
    extractor.add_frames(video[:15])  # shorter than a clip: no row
    assert len(extractor.end_video()) == 0
    extractor.add_frames(video)
    again = extractor.end_video()
    np.testing.assert_allclose(again, rows, rtol=1e-5, atol=1e-6)
    assert abs(frechet_distance(rows, again)) < 1e-8


def test_clip_stride_and_network_input(tiny):
    folder, nets = tiny
    make = METRICS["FVD_i3d_disco"].build(_context(folder, ClipSampling(length=16, stride=4)))
    extractor = make()
    video = _frames(6, n=25, size=48)
    extractor.add_frames(video)
    rows = extractor.end_video()
    assert rows.shape == (3, 7)  # windows start at 0, 4, 8
    # the second window, prepared by hand: PIL bicubic on float channels to 224, then [-1,1]
    def channel(f, c):
        return np.asarray(Image.fromarray(f[..., c].astype(np.float32), mode="F").resize((224, 224), Image.BICUBIC))

    clip = np.stack([[channel(f, c) for c in range(3)] for f in video[4:20]])  # [16, 3, 224, 224] on 0..255
    x = torch.from_numpy(clip).permute(1, 0, 2, 3)[None] / 127.5 - 1.0
    with torch.no_grad():
        expected = nets["i3d"](x).double().numpy()
    np.testing.assert_allclose(rows[1:2], expected, rtol=1e-4, atol=1e-5)


def test_canonical_architectures_have_published_key_layout():
    i3d = InceptionI3dLogits().state_dict()
    assert i3d["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert i3d["Mixed_5c.b3b.conv3d.weight"].shape == (128, 832, 1, 1, 1)
    assert i3d["Mixed_4b.b1b.bn.running_var"].shape == (208,)
    assert i3d["logits.conv3d.bias"].shape == (400,)
    resnet = ResNet3dFeatures()
    state = resnet.state_dict()
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1, 1)
    assert state["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1, 1)
    assert "layer2.3.bn2.weight" in state and "layer2.4.bn2.weight" not in state
    assert resnet.out_features == 2048
    assert ResNet3dFeatures.config_from_weights(state) == {"stem_width": 64, "planes": [64, 128, 256, 512],
                                                           "blocks": [3, 4, 6, 3]}
    alex = LpipsNetwork("alex", [(64, 3, 11), (192, 64, 5), (384, 192, 3), (256, 384, 3), (256, 256, 3)])
    assert [getattr(alex, f"lin{k}").model[1].weight.shape[1] for k in range(5)] == [64, 192, 384, 256, 256]
    assert alex.state_dict()["features.10.weight"].shape == (256, 256, 3, 3)


def test_missing_weights_name_file_and_metric(tmp_path):
    with pytest.raises(Champ3dInputError) as error:
        METRICS["FVD_i3d_disco"].build(_context(tmp_path))
    message = str(error.value)
    assert "i3d_pretrained_400.pt" in message and "FVD_i3d_disco" in message and str(tmp_path) in message


def test_weights_that_do_not_fit_are_rejected(tmp_path):
    torch.save({"conv1.weight": torch.zeros(4, 3, 7, 7, 7)}, tmp_path / "resnet-50-kinetics.pth")
    with pytest.raises(Champ3dInputError, match="resnet-50-kinetics.pth.*FID_VID_3drn50"):
        METRICS["FID_VID_3drn50"].build(_context(tmp_path))
    torch.save({"weights": [1, 2]}, tmp_path / "i3d_pretrained_400.pt")
    with pytest.raises(Champ3dInputError, match="not a state dict"):
        METRICS["FVD_i3d_disco"].build(_context(tmp_path))


def test_same_padding_follows_tensorflow():
    """TF "SAME": output length ceil(size / stride); the odd padding pixel goes at the back."""
    from champ3d.eval.i3d import _same_padding

    for size in range(5, 20):
        for kernel, stride in ((1, 1), (3, 1), (3, 2), (7, 2), (2, 2)):
            front, back = _same_padding((size,), (kernel,), (stride,))
            assert back - front in (0, 1)
            assert (size + front + back - kernel) // stride + 1 == -(-size // stride)


def test_lpips_heads_must_fit_the_backbone(tmp_path, tiny):
    folder, _ = tiny
    for name in ("vgg16-397923af.pth", "alex.pth"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    with pytest.raises(Champ3dInputError, match="vgg16-397923af.pth.*alex.pth"):
        METRICS["LPIPS_vgg_disco"].build(BuildContext(WeightsStore(tmp_path, {"vgg.pth": tmp_path / "alex.pth"}),
                                                      torch.device("cpu"), 4, ClipSampling(16, 1)))


def test_weights_store_tells_missing_files_from_bad_configuration(tmp_path, tiny, monkeypatch):
    folder, _ = tiny
    monkeypatch.delenv("CHAMP3D_WEIGHTS", raising=False)
    unconfigured = WeightsStore()
    assert unconfigured.missing(["alex.pth", "vgg.pth"]) == ["alex.pth", "vgg.pth"]
    with pytest.raises(Champ3dInputError, match="no weights directory is configured"):
        unconfigured.path("alex.pth", "LPIPS_alex")
    partial = WeightsStore(tmp_path, {"vgg.pth": folder / "vgg.pth"})
    assert partial.missing(["alex.pth", "vgg.pth"]) == ["alex.pth"]  # an override counts as provided
    assert WeightsStore(folder).missing(sorted(KNOWN_WEIGHTS)) == []
    with pytest.raises(Champ3dInputError) as error:
        WeightsStore(tmp_path / "absent")
    assert error.value.where == "weights_dir"
    with pytest.raises(Champ3dInputError) as error:
        WeightsStore(folder, {"alex.pth": tmp_path / "absent.pth"})
    assert error.value.where == "weights.alex.pth" and "absent.pth does not exist" in error.value.problem
    monkeypatch.setenv("CHAMP3D_WEIGHTS", str(tmp_path / "absent"))
    with pytest.raises(Champ3dInputError) as error:
        WeightsStore()
    assert error.value.where == "$CHAMP3D_WEIGHTS"
