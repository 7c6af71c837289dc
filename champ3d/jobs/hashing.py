"""Content hashes: of input files and folders, and of settings.

A file's hash is the sha256 of its bytes. A folder's hash is the sha256 of the sorted list
of ``relative/path <tab> file sha256`` lines of every file below it. File hashes are
remembered in ``<store>/<sha256 of the absolute path>.json`` together with the file's
size, modification time (ns) and inode, and reused while all three are unchanged, so a
rerun does not read large inputs again. Records are written atomically; processes that
hash the same file at once write identical records.

:func:`settings_hash` hashes JSON-able data through canonical JSON (sorted keys, no
whitespace), so equal settings give equal keys in every process.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from champ3d.io.atomic import atomic_write_path
from champ3d.provenance import sha256_file


def settings_hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ContentHasher:
    """sha256 of files and folders, remembered on disk under ``store``."""

    def __init__(self, store: Path):
        self.store = Path(store)

    def __call__(self, path: os.PathLike | str) -> str:
        path = Path(path).absolute()
        if path.is_dir():
            lines = [f"{f.relative_to(path).as_posix()}\t{self._file(f)}\n"
                     for f in sorted(p for p in path.rglob("*") if p.is_file())]
            return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
        return self._file(path)

    def _file(self, path: Path) -> str:
        stat = path.stat()
        identity = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}
        record = self.store / f"{hashlib.sha256(str(path).encode('utf-8')).hexdigest()}.json"
        try:
            known = json.loads(record.read_text(encoding="utf-8"))
            if {k: known.get(k) for k in identity} == identity:
                return known["sha256"]
        except (OSError, ValueError, KeyError):
            pass
        sha = sha256_file(path)
        record.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write_path(record, overwrite=True) as temp:
            temp.write_text(json.dumps({**identity, "sha256": sha}), encoding="utf-8")
        return sha
