"""Inception-I3D (Carreira & Zisserman 2017) logits network for DisCo-style FVD.

Key layout of the PyTorch port used by VideoGPT/TATS and DisCo (``i3d_pretrained_400.pt``):
``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias``...
Convolutions and pools use TensorFlow "SAME" padding computed from the input size
(zero padding, split front/back with the extra pixel at the back). Input clips
``[N, 3, T, 224, 224]`` in [-1,1]; output: class logits after a (1,7,7) average pool,
averaged over the remaining time steps, ``[N, num_classes]`` (DisCo's ``FVD-3DInception``).

Topology (which units, kernels, strides and pools) is fixed here; channel widths are read
from the weights, so test-sized checkpoints load through the same code.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

_BN_EPS = 1e-3


def _same_padding(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> tuple[int, ...]:
    pads: list[int] = []
    for s, k, st in zip(size, kernel, stride):
        total = max(k - st, 0) if s % st == 0 else max(k - s % st, 0)
        pads.append(total)
    # F.pad order: last dimension first, (front, back) per dimension.
    out: list[int] = []
    for total in reversed(pads):
        out += [total // 2, total - total // 2]
    return tuple(out)


class Unit3d(nn.Module):
    """SAME-padded Conv3d, optional BatchNorm (eps 1e-3) and ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: Sequence[int], stride: Sequence[int] = (1, 1, 1),
                 batch_norm: bool = True, bias: bool = False, relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(in_ch, out_ch, self.kernel, stride=self.stride, bias=bias)
        self.bn = nn.BatchNorm3d(out_ch, eps=_BN_EPS) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, _same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return torch.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: Sequence[int], stride: Sequence[int]):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(F.pad(x, _same_padding(x.shape[2:], self.kernel, self.stride)), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max-pool -> 1x1.
    ``widths`` = (b0, b1a, b1b, b2a, b2b, b3b) output channels."""

    def __init__(self, in_ch: int, widths: Sequence[int]):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3b = widths
        self.b0 = Unit3d(in_ch, b0, (1, 1, 1))
        self.b1a = Unit3d(in_ch, b1a, (1, 1, 1))
        self.b1b = Unit3d(b1a, b1b, (3, 3, 3))
        self.b2a = Unit3d(in_ch, b2a, (1, 1, 1))
        self.b2b = Unit3d(b2a, b2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3d(in_ch, b3b, (1, 1, 1))
        self.out_channels = b0 + b1b + b2b + b3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


_BRANCHES = ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")
# Endpoints in order: ("unit", name, kernel, stride) | ("pool", name, kernel, stride) | ("mixed", name).
_TOPOLOGY = (
    ("unit", "Conv3d_1a_7x7", (7, 7, 7), (2, 2, 2)),
    ("pool", "MaxPool3d_2a_3x3", (1, 3, 3), (1, 2, 2)),
    ("unit", "Conv3d_2b_1x1", (1, 1, 1), (1, 1, 1)),
    ("unit", "Conv3d_2c_3x3", (3, 3, 3), (1, 1, 1)),
    ("pool", "MaxPool3d_3a_3x3", (1, 3, 3), (1, 2, 2)),
    ("mixed", "Mixed_3b"),
    ("mixed", "Mixed_3c"),
    ("pool", "MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)),
    ("mixed", "Mixed_4b"),
    ("mixed", "Mixed_4c"),
    ("mixed", "Mixed_4d"),
    ("mixed", "Mixed_4e"),
    ("mixed", "Mixed_4f"),
    ("pool", "MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2)),
    ("mixed", "Mixed_5b"),
    ("mixed", "Mixed_5c"),
)
# Published Kinetics-400 widths: stem units, then per mixed block (b0, b1a, b1b, b2a, b2b, b3b).
CANONICAL_WIDTHS: dict[str, tuple[int, ...]] = {
    "Conv3d_1a_7x7": (64,), "Conv3d_2b_1x1": (64,), "Conv3d_2c_3x3": (192,),
    "Mixed_3b": (64, 96, 128, 16, 32, 32), "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64), "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64), "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128), "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class InceptionI3dLogits(nn.Module):
    """``forward(clips [N, 3, T, 224, 224]) -> [N, num_classes]`` time-averaged logits."""

    unused_weight_prefixes: tuple[str, ...] = ()

    def __init__(self, widths: Mapping[str, Sequence[int]] = CANONICAL_WIDTHS, num_classes: int = 400):
        super().__init__()
        in_ch = 3
        self.endpoints: list[str] = []
        for entry in _TOPOLOGY:
            kind, name = entry[0], entry[1]
            if kind == "unit":
                module: nn.Module = Unit3d(in_ch, widths[name][0], entry[2], entry[3])
                in_ch = widths[name][0]
            elif kind == "pool":
                module = MaxPool3dSame(entry[2], entry[3])
            else:
                module = InceptionBlock(in_ch, widths[name])
                in_ch = module.out_channels
            self.add_module(name, module)
            self.endpoints.append(name)
        self.logits = Unit3d(in_ch, num_classes, (1, 1, 1), batch_norm=False, bias=True, relu=False)

    @classmethod
    def config_from_weights(cls, state: Mapping[str, torch.Tensor]) -> dict:
        """Constructor arguments matching a checkpoint's shapes."""
        widths: dict[str, tuple[int, ...]] = {}
        for entry in _TOPOLOGY:
            kind, name = entry[0], entry[1]
            if kind == "unit":
                widths[name] = (state[f"{name}.conv3d.weight"].shape[0],)
            elif kind == "mixed":
                widths[name] = tuple(state[f"{name}.{b}.conv3d.weight"].shape[0] for b in _BRANCHES)
        return {"widths": widths, "num_classes": state["logits.conv3d.weight"].shape[0]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.endpoints:
            x = getattr(self, name)(x)
        x = self.logits(F.avg_pool3d(x, (1, 7, 7), stride=1))
        return x.mean(dim=(2, 3, 4))
