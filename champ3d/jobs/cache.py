"""The stage cache: one folder per stage result, named by the content hash of what made it.

Layout under the cache root (``<job output>/.cache``)::

    <stage>/<key>/              a stage result: the stage's files + entry.json
    <stage>/<key>.lock          lock file of that entry (holder: host, pid, run id)

**Complete results only.** A result is built in its own folder ``<key>/``, so every path
the stage records (fits, evaluation records) is the path the result keeps. When the stage
is done, every file and folder in it is fsynced and the manifest ``entry.json`` (stage,
key, what went in, who computed it, how long it took) is written last, atomically
(temporary name, fsync, rename). A result is complete when, and only when, its
``entry.json`` exists; a process killed at any point (SIGKILL included) leaves at most a
folder without one, which never counts as a result and is deleted by the next process
that computes that key.

**Locks.** Computing an entry holds an exclusive ``fcntl.flock`` on ``<key>.lock``. The
kernel (or the NFS lock manager) drops the lock when its holder dies, however it dies, so
there are no stale locks to take over. The lock holder re-checks for a complete result
(another process may have finished it meanwhile: the result is then *cached*, not
recomputed) and removes any leftover ``<key>/`` before building: while it holds the lock
nobody else can be writing there. Each process holds at most one entry lock at a time,
so processes cannot deadlock. ``flock`` works across machines on NFSv4 (Linux maps it to
POSIX locks) and on Lustre mounted with ``-o flock``; on a file system without working
locks, run one process per output folder.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

from champ3d.io.atomic import atomic_write_path, fsync_path, fsync_tree

ENTRY_FILE = "entry.json"


class EntryBusy(Exception):
    """Another process holds the lock of the entry (raised only when not waiting)."""


@dataclass(frozen=True)
class Outcome:
    status: Literal["computed", "cached"]
    path: Path
    manifest: dict
    seconds: float  # time spent in this call (computing, or finding the result)


class StageCache:
    def __init__(self, root: os.PathLike | str, run_id: str):
        self.root = Path(root)
        self.run_id = run_id

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def is_complete(self, stage: str, key: str) -> bool:
        return (self.entry(stage, key) / ENTRY_FILE).is_file()

    def manifest(self, stage: str, key: str) -> dict:
        return json.loads((self.entry(stage, key) / ENTRY_FILE).read_text(encoding="utf-8"))

    def get_or_compute(self, stage: str, key: str, build: Callable[[Path], dict], record: dict, *,
                       wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Outcome:
        """The entry ``stage/key``: found, or made by ``build(folder)`` under the entry's lock.

        ``build`` fills the empty ``folder`` and returns a JSON-able summary, stored with
        ``record`` (what went into the key) in the manifest. With ``wait=False`` an entry
        locked by another process raises :class:`EntryBusy`; otherwise this call waits for
        the lock (calling ``on_wait`` with the holder's description first).
        """
        start = time.perf_counter()
        if self.is_complete(stage, key):
            return Outcome("cached", self.entry(stage, key), self.manifest(stage, key), time.perf_counter() - start)
        with self._locked(stage, key, wait, on_wait):
            if self.is_complete(stage, key):  # finished by the process we waited for
                return Outcome("cached", self.entry(stage, key), self.manifest(stage, key),
                               time.perf_counter() - start)
            folder = self.entry(stage, key)
            if folder.exists():  # left by a killed process; nobody else writes here while we hold the lock
                shutil.rmtree(folder)
            folder.mkdir()
            began = time.time()
            try:
                summary = build(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            manifest = {
                "stage": stage, "key": key, **record, "result": summary,
                "computed_by": {"host": socket.gethostname(), "pid": os.getpid(), "run": self.run_id,
                                "started": began, "seconds": time.time() - began},
            }
            fsync_tree(folder)
            with atomic_write_path(folder / ENTRY_FILE) as temp:
                temp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            fsync_path(folder)
            return Outcome("computed", folder, manifest, time.perf_counter() - start)

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Hold the exclusive lock ``<root>/<name>.lock`` (waiting for it) for other shared work."""
        return self._locked_path(self.root / f"{name}.lock", name, True, None)

    def _locked(self, stage: str, key: str, wait: bool, on_wait) -> contextlib.AbstractContextManager[None]:
        return self._locked_path(self.root / stage / f"{key}.lock", f"{stage}/{key[:12]}", wait, on_wait)

    @contextlib.contextmanager
    def _locked_path(self, path: Path, label: str, wait: bool, on_wait) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
                if not wait:
                    raise EntryBusy(f"{label} is held by {holder}") from None
                if on_wait is not None:
                    on_wait(f"waiting for {label}, held by {holder}")
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()} run {self.run_id}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock
