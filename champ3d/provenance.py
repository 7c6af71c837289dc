"""What a result was made from: installed package versions and file content hashes."""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
from typing import Iterable


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """``{distribution name: version}``; ``"not installed"`` for those that are missing."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def sha256_file(path: os.PathLike | str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
