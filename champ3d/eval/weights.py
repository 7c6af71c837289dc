"""Network weights for the backbone metrics: local files only, never downloaded.

Every file a metric needs has a canonical name (the name it is published under) listed in
:data:`KNOWN_WEIGHTS` with where to obtain it. A :class:`WeightsStore` resolves a name to
a path: an explicit override first, else ``<weights_dir>/<name>`` with ``weights_dir``
defaulting to ``$CHAMP3D_WEIGHTS``.

Two kinds of absence are told apart:

- a *configured* location that does not exist (``weights_dir``, ``$CHAMP3D_WEIGHTS`` or an
  override path) is a user error: :class:`champ3d.errors.Champ3dInputError` naming that
  field, raised when the store is made;
- a file simply not provided (no weights folder configured, or the folder lacks it) is
  reported by :meth:`WeightsStore.missing`, so an evaluation can mark the metrics that need
  it ("needs i3d_pretrained_400.pt") and compute the others; :meth:`WeightsStore.path`
  raises for it, naming the file, the metric and the download source.

Every file used is hashed (sha256) for the run record.

Loading never unpickles code: state dicts come from safetensors (``.safetensors``) or
``torch.load(weights_only=True)``; TorchScript archives from ``torch.jit.load``.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch

from champ3d.errors import Champ3dInputError
from champ3d.provenance import sha256_file

WEIGHTS_ENV = "CHAMP3D_WEIGHTS"


@dataclass(frozen=True)
class WeightsFile:
    name: str
    source: str


KNOWN_WEIGHTS: dict[str, WeightsFile] = {
    w.name: w
    for w in (
        WeightsFile("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
        WeightsFile("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
        WeightsFile("alex.pth", "the lpips wheel (PyPI lpips 0.1.4), lpips/weights/v0.1/alex.pth"),
        WeightsFile("vgg.pth", "the lpips wheel (PyPI lpips 0.1.4), lpips/weights/v0.1/vgg.pth"),
        WeightsFile(
            "inception-2015-12-05.pt",
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
        ),
        WeightsFile("i3d_torchscript.pt", "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt"),
        WeightsFile(
            "i3d_pretrained_400.pt",
            "the VideoGPT/TATS release of the PyTorch InceptionI3d Kinetics-400 weights (also shipped with cd-fvd)",
        ),
        WeightsFile(
            "resnet-50-kinetics.pth",
            "https://github.com/yjh0410/YOWOF/releases (tag yowof-weight), 3D-ResNets-PyTorch Kinetics-400",
        ),
    )
}


class WeightsStore:
    """Resolves canonical weight names to local files and loads them.

    ``overrides`` maps a canonical name to a path (for files kept under another name).
    """

    def __init__(self, weights_dir: Optional[os.PathLike | str] = None,
                 overrides: Optional[Mapping[str, os.PathLike | str]] = None):
        env_dir = os.environ.get(WEIGHTS_ENV)
        field, chosen = ("weights_dir", weights_dir) if weights_dir is not None else (f"${WEIGHTS_ENV}", env_dir)
        self.weights_dir = Path(chosen) if chosen else None
        if self.weights_dir is not None and not self.weights_dir.is_dir():
            raise Champ3dInputError(field, f"weights folder {self.weights_dir} does not exist")
        self.overrides = {name: Path(p) for name, p in (overrides or {}).items()}
        unknown = sorted(set(self.overrides) - set(KNOWN_WEIGHTS))
        if unknown:
            raise Champ3dInputError("weights", f"unknown weights name(s) {unknown}; known: {sorted(KNOWN_WEIGHTS)}")
        for name, path in self.overrides.items():
            if not path.is_file():
                raise Champ3dInputError(f"weights.{name}", f"weights file {path} does not exist")
        self._hashes: dict[str, str] = {}

    def missing(self, names: Sequence[str]) -> list[str]:
        """The files among ``names`` that are not provided (not overridden and not in the folder)."""
        return [name for name in names if name not in self.overrides
                and (self.weights_dir is None or not (self.weights_dir / name).is_file())]

    def path(self, name: str, metric: str) -> Path:
        known = KNOWN_WEIGHTS[name]
        if name in self.overrides:
            path = self.overrides[name]
        elif self.weights_dir is not None:
            path = self.weights_dir / name
        else:
            raise Champ3dInputError(
                name, f"metric {metric} needs weights file {name}; no weights directory is configured "
                f"(pass weights_dir or set ${WEIGHTS_ENV}); obtain it from {known.source}")
        if not path.is_file():
            raise Champ3dInputError(
                path, f"weights file {name} for metric {metric} is missing; obtain it from {known.source}")
        return path

    def sha256(self, name: str, metric: str) -> str:
        if name not in self._hashes:
            self._hashes[name] = sha256_file(self.path(name, metric))
        return self._hashes[name]

    def load_state_dict(self, name: str, metric: str) -> dict[str, torch.Tensor]:
        """Flat ``{key: tensor}``; a top-level ``state_dict`` entry is unwrapped and a
        ``module.`` (DataParallel) key prefix removed."""
        path = self.path(name, metric)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                loaded = load_file(str(path))
            else:
                loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any unreadable or code-carrying file is a user input problem
            raise Champ3dInputError(path, f"cannot read weights for metric {metric}: {exc}") from exc
        if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise Champ3dInputError(path, f"weights for metric {metric} are not a state dict of tensors")
        return {k.removeprefix("module."): v for k, v in loaded.items()}

    def load_torchscript(self, name: str, metric: str, device: torch.device) -> torch.jit.ScriptModule:
        path = self.path(name, metric)
        try:
            with warnings.catch_warnings():  # the published networks exist only as TorchScript archives
                warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated",
                                        category=DeprecationWarning)
                return torch.jit.load(str(path), map_location=device).eval()
        except Exception as exc:
            raise Champ3dInputError(path, f"cannot load TorchScript network for metric {metric}: {exc}") from exc


def load_matching(module: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str, metric: str) -> None:
    """Load ``state`` into ``module`` requiring the same keys and shapes (BatchNorm's
    ``num_batches_tracked`` counters, absent from old checkpoints, are ignored)."""
    expected = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(k for k in set(expected) & set(given) if expected[k].shape != given[k].shape)
    if missing or unexpected or wrong:
        raise Champ3dInputError(
            where, f"weights do not fit the {metric} network: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape {wrong[:5]}")
    module.load_state_dict(given, strict=False)
