"""3D ResNet (bottleneck) feature network for FID-VID.

The Kinetics-400 3D-ResNet-50 of Hara et al. (3D-ResNets-PyTorch, ``resnet-50-kinetics.pth``,
shortcut type B) as used by DisCo's ``FVD-3DRN50``: input clips ``[N, 3, T, H, W]`` (16 x 112 x
112, 0..255 minus the Kinetics mean); output the globally average-pooled last-stage
features ``[N, 2048]`` (the classifier ``fc.*`` is not used).

Topology (strides, paddings) is fixed here; widths and block counts are read from the
weights, so test-sized checkpoints load through the same code.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

EXPANSION = 4


class Bottleneck3d(nn.Module):
    def __init__(self, in_ch: int, planes: int, stride: int, downsample: bool):
        super().__init__()
        self.conv1 = nn.Conv3d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * EXPANSION)
        self.downsample = (
            nn.Sequential(nn.Conv3d(in_ch, planes * EXPANSION, 1, stride=stride, bias=False),
                          nn.BatchNorm3d(planes * EXPANSION))
            if downsample else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + residual)


class ResNet3dFeatures(nn.Module):
    """``forward(clips [N, 3, T, H, W]) -> [N, planes[-1] * 4]`` pooled features.

    The global average pool equals the original fixed (1, 4, 4) pool for 16 x 112 x 112 clips.
    """

    unused_weight_prefixes = ("fc.",)  # the Kinetics classifier

    def __init__(self, stem_width: int = 64, planes: Sequence[int] = (64, 128, 256, 512),
                 blocks: Sequence[int] = (3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv3d(3, stem_width, 7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(stem_width)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        in_ch = stem_width
        for index, (width, count) in enumerate(zip(planes, blocks)):
            stride = 1 if index == 0 else 2
            layer = []
            for b in range(count):
                first = b == 0
                layer.append(Bottleneck3d(in_ch, width, stride if first else 1,
                                          downsample=first and (stride != 1 or in_ch != width * EXPANSION)))
                in_ch = width * EXPANSION
            self.add_module(f"layer{index + 1}", nn.Sequential(*layer))
        self.out_features = in_ch

    @classmethod
    def config_from_weights(cls, state: Mapping[str, torch.Tensor]) -> dict:
        """Constructor arguments matching a checkpoint's shapes."""
        planes, blocks = [], []
        for index in range(1, 5):
            planes.append(state[f"layer{index}.0.conv1.weight"].shape[0])
            blocks.append(len({k.split(".")[1] for k in state if k.startswith(f"layer{index}.")}))
        return {"stem_width": state["conv1.weight"].shape[0], "planes": planes, "blocks": blocks}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3, 4))
