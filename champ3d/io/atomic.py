"""Atomic outputs: a file or folder appears under its final name only once it is complete.

Every output is built under a temporary sibling name,
``<name>.partial-<host>-<pid>-<token><suffix>`` (the suffix repeated so that writers
which pick a format from it still work), in the same folder (so the final rename never
crosses a file system), flushed to disk with ``fsync``, and then renamed into place.
A failure inside the ``with`` block removes the temporary; a process killed outright
(SIGKILL, power loss) leaves only a ``.partial-`` name, never something that looks
complete. Such leftovers of processes on this host that no longer run are removed the
next time the same output is written, so a resumed job cleans up after the killed one.

Existing outputs are never replaced unless ``overwrite=True``: a caller that finds its
output already there should treat the work as done.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import Iterator

from champ3d.errors import Champ3dInputError

_PARTIAL = ".partial-"


@contextlib.contextmanager
def atomic_write_path(path: os.PathLike | str, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write one file to; it becomes ``path`` when the block succeeds.

    The temporary path does not exist yet: the caller creates it. It ends with the
    suffix of ``path``, so format-guessing writers work. On success the file is fsynced and
    moved onto ``path`` with :func:`os.replace`; on any exception it is deleted and the
    exception propagates.

    Raises:
        Champ3dInputError: ``path`` already exists and ``overwrite`` is False (checked
            on entry and again before the rename).
        FileNotFoundError: the block ended without creating the temporary file.
    """
    final = Path(path)
    _refuse_existing(final, overwrite)
    _remove_stale_partials(final)
    temp = _partial_name(final)
    try:
        yield temp
        if not temp.is_file():
            raise FileNotFoundError(f"{final}: nothing was written to the temporary file {temp.name}")
        fsync_path(temp)
        _refuse_existing(final, overwrite)
        os.replace(temp, final)
        fsync_path(final.parent)
    except BaseException:
        _remove(temp)
        raise


@contextlib.contextmanager
def atomic_output_dir(path: os.PathLike | str, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a new empty temporary folder; it becomes ``path`` when the block succeeds.

    On success every file in the folder, the folder itself and its parent are fsynced,
    then the folder is renamed to ``path``. An existing *empty* folder at ``path`` is
    simply replaced. With ``overwrite=True`` a non-empty one is first renamed aside and
    deleted after the new folder is in place (``path`` is briefly absent, but never
    half-written). On any exception the temporary folder is deleted.

    Raises:
        Champ3dInputError: ``path`` exists (and is not an empty folder) while
            ``overwrite`` is False (checked on entry and again before the rename).
    """
    final = Path(path)
    _refuse_existing(final, overwrite)
    _remove_stale_partials(final)
    temp = _partial_name(final)
    temp.mkdir()
    try:
        yield temp
        fsync_tree(temp)
        _refuse_existing(final, overwrite)
        _move_dir_into_place(temp, final)
        fsync_path(final.parent)
    except BaseException:
        _remove(temp)
        raise


def _move_dir_into_place(temp: Path, final: Path) -> None:
    if final.is_dir() and not final.is_symlink() and not any(final.iterdir()):
        final.rmdir()
    if not (final.exists() or final.is_symlink()):
        os.rename(temp, final)
        return
    old = _partial_name(final)
    os.rename(final, old)
    try:
        os.rename(temp, final)
    except BaseException:
        os.rename(old, final)
        raise
    _remove(old)


def _refuse_existing(final: Path, overwrite: bool) -> None:
    if overwrite or not (final.exists() or final.is_symlink()):
        return
    if final.is_dir() and not final.is_symlink() and not any(final.iterdir()):
        return
    raise Champ3dInputError(final, "output already exists; refusing to overwrite it")


def _partial_name(final: Path) -> Path:
    token = secrets.token_hex(4)
    return final.with_name(f"{final.name}{_PARTIAL}{socket.gethostname()}-{os.getpid()}-{token}{final.suffix}")


def _remove_stale_partials(final: Path) -> None:
    """Delete leftovers for ``final`` written by processes of this host that have ended."""
    prefix = f"{final.name}{_PARTIAL}{socket.gethostname()}-"
    if not final.parent.is_dir():
        return
    for entry in final.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        pid_text, dash, token = entry.name[len(prefix):].partition("-")
        if dash and "-" not in token and pid_text.isdigit() and not _process_running(int(pid_text)):
            _remove(entry)


def _process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_path(path: Path) -> None:
    """Flush one file or folder (its directory entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file below ``folder`` (symbolic links are not followed) and every folder."""
    for root, _, files in os.walk(folder):
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                fsync_path(Path(root, name))
        fsync_path(Path(root))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
