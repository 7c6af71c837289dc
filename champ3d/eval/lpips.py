"""LPIPS v0.1 (Zhang et al. 2018) without torchvision.

The network: an ImageNet backbone's convolutional ``features`` (AlexNet or VGG-16, the
torchvision layout, so the published ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``
load directly), read at five ReLU taps; each tap is unit-normalised over channels, the
squared difference of the two images is weighted by a 1x1 linear head (the ``lpips``
package's v0.1 heads, keys ``lin{k}.model.1.weight``), averaged over space, and summed over
taps. Inputs pass the LPIPS scaling layer first; the network expects images in [-1,1]
(feeding [0,1] reproduces DisCo's quirk, see :class:`LpipsSpec`).

Layer topology (kernel strides, paddings and pools) is fixed here; layer widths are read
from the weights, so the same code loads the published files and test-sized ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

# Topology entries: ("conv", stride, padding), ("relu",), ("pool", kernel, stride).
_ALEXNET_LAYERS = (
    ("conv", 4, 2), ("relu",), ("pool", 3, 2),
    ("conv", 1, 2), ("relu",), ("pool", 3, 2),
    ("conv", 1, 1), ("relu",),
    ("conv", 1, 1), ("relu",),
    ("conv", 1, 1), ("relu",),
)
_ALEXNET_TAPS = (1, 4, 7, 9, 11)


def _vgg16_topology() -> tuple[tuple, tuple[int, ...]]:
    layers: list[tuple] = []
    taps: list[int] = []
    for block, convs in enumerate((2, 2, 3, 3, 3)):
        if block:
            layers.append(("pool", 2, 2))
        for _ in range(convs):
            layers += [("conv", 1, 1), ("relu",)]
        taps.append(len(layers) - 1)
    return tuple(layers), tuple(taps)


_VGG16_LAYERS, _VGG16_TAPS = _vgg16_topology()
TOPOLOGIES = {"alex": (_ALEXNET_LAYERS, _ALEXNET_TAPS), "vgg": (_VGG16_LAYERS, _VGG16_TAPS)}

# LPIPS scaling layer: (x - shift) / scale, per RGB channel.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10


class _LinearHead(nn.Module):
    """Keeps the ``lpips`` key layout ``model.1.weight`` (index 0 is its dropout)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class LpipsNetwork(nn.Module):
    """``forward(x0, x1) -> [N]`` LPIPS distances for image batches ``[N, 3, H, W]`` in the
    network's input range (the range LPIPS expects is [-1,1])."""

    def __init__(self, backbone: Literal["alex", "vgg"], conv_shapes: Sequence[tuple[int, int, int]]):
        """``conv_shapes``: (out channels, in channels, kernel size) of each conv, in order."""
        super().__init__()
        layers, taps = TOPOLOGIES[backbone]
        shapes = iter(conv_shapes)
        modules: list[nn.Module] = []
        for entry in layers:
            if entry[0] == "conv":
                out_ch, in_ch, kernel = next(shapes)
                modules.append(nn.Conv2d(in_ch, out_ch, kernel, stride=entry[1], padding=entry[2]))
            elif entry[0] == "relu":
                modules.append(nn.ReLU())
            else:
                modules.append(nn.MaxPool2d(entry[1], entry[2]))
        self.features = nn.Sequential(*modules)
        self.taps = taps
        tap_channels = [self._channels_before(t) for t in taps]
        for k, channels in enumerate(tap_channels):
            self.add_module(f"lin{k}", _LinearHead(channels))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def _channels_before(self, index: int) -> int:
        return next(m.out_channels for m in reversed(self.features[: index + 1]) if isinstance(m, nn.Conv2d))

    @classmethod
    def from_weights(cls, backbone: Literal["alex", "vgg"], features: Mapping[str, torch.Tensor],
                     heads: Mapping[str, torch.Tensor]) -> "LpipsNetwork":
        """Build from a torchvision backbone state dict (``features.*``; other keys such as
        ``classifier.*`` are ignored) and an ``lpips`` head state dict; loads both."""
        layers, _ = TOPOLOGIES[backbone]
        conv_indices = [i for i, entry in enumerate(layers) if entry[0] == "conv"]
        shapes = []
        for i in conv_indices:
            key = f"features.{i}.weight"
            if key not in features:
                raise KeyError(key)
            w = features[key]
            shapes.append((w.shape[0], w.shape[1], w.shape[2]))
        net = cls(backbone, shapes)
        state = {k: v for k, v in features.items() if k.startswith("features.")}
        state.update(heads)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise KeyError(f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        return net.eval()

    def tap_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.shift) / self.scale
        out = []
        for index, module in enumerate(self.features):
            h = module(h)
            if index in self.taps:
                out.append(h)
            if index == self.taps[-1]:
                break
        return out

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(len(x0), dtype=x0.dtype, device=x0.device)
        for k, (f0, f1) in enumerate(zip(self.tap_features(x0), self.tap_features(x1))):
            f0 = f0 / (f0.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS)
            f1 = f1 / (f1.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS)
            head = getattr(self, f"lin{k}").model[1]
            total = total + head((f0 - f1) ** 2).mean(dim=(1, 2, 3))
        return total


@dataclass(frozen=True)
class LpipsSpec:
    """``backbone``: ``"alex"`` (recommended by the LPIPS authors) or ``"vgg"`` (DisCo).
    ``input_range``: how uint8 frames are mapped before the network: ``"minus_one_one"``
    (x/127.5 - 1, correct) or ``"zero_one"`` (x/255, DisCo's ``ToTensor`` without
    ``normalize=True``)."""

    backbone: Literal["alex", "vgg"]
    input_range: Literal["minus_one_one", "zero_one"]


class LpipsMetric:
    """Per-frame LPIPS for uint8 ``[N, H, W, 3]`` frame pairs (conventions in :mod:`champ3d.eval.pixel`)."""

    def __init__(self, network: LpipsNetwork, spec: LpipsSpec, device: torch.device, batch_size: int):
        self.network = network.to(device)
        self.spec = spec
        self.device = device
        self.batch_size = batch_size

    def _to_input(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float()
        return x / 255.0 if self.spec.input_range == "zero_one" else x / 127.5 - 1.0

    @torch.no_grad()
    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        values = []
        for start in range(0, len(pred), self.batch_size):
            stop = start + self.batch_size
            values.append(self.network(self._to_input(pred[start:stop]), self._to_input(gt[start:stop])))
        return torch.cat(values).double().cpu().numpy()
