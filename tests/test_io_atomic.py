"""Atomic files and folders, including a process killed with SIGKILL half-way and resumed."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from champ3d.errors import Champ3dInputError
from champ3d.io import atomic_output_dir, atomic_write_path

REPO_ROOT = Path(__file__).resolve().parents[1]


def names(folder: Path):
    return sorted(p.name for p in folder.iterdir())


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_file_appears_only_on_success(tmp_path):
    final = tmp_path / "result.json"
    with atomic_write_path(final) as temp:
        assert temp.parent == tmp_path and ".partial-" in temp.name and not temp.exists()
        assert temp.suffix == ".json"
        temp.write_text("{}")
        assert not final.exists()
    assert final.read_text() == "{}"
    assert names(tmp_path) == ["result.json"]


def test_file_failure_removes_the_temporary(tmp_path):
    with pytest.raises(OSError, match="disk full"):
        with atomic_write_path(tmp_path / "result.json") as temp:
            temp.write_text("half")
            raise OSError("disk full")
    assert names(tmp_path) == []


def test_file_never_written_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_write_path(tmp_path / "result.json"):
            pass
    assert names(tmp_path) == []


def test_existing_file_needs_overwrite(tmp_path):
    final = tmp_path / "result.json"
    final.write_text("old")
    with pytest.raises(Champ3dInputError, match="already exists"):
        with atomic_write_path(final):
            pytest.fail("the block must not run")
    with atomic_write_path(final, overwrite=True) as temp:
        temp.write_text("new")
    assert final.read_text() == "new" and names(tmp_path) == ["result.json"]


def test_file_created_by_someone_else_meanwhile_is_not_clobbered(tmp_path):
    final = tmp_path / "result.json"
    with pytest.raises(Champ3dInputError, match="already exists"):
        with atomic_write_path(final) as temp:
            temp.write_text("mine")
            final.write_text("theirs")
    assert final.read_text() == "theirs" and names(tmp_path) == ["result.json"]


def test_dir_appears_only_on_success(tmp_path):
    final = tmp_path / "frames"
    with atomic_output_dir(final) as temp:
        assert temp.is_dir() and temp.parent == tmp_path and ".partial-" in temp.name
        (temp / "sub").mkdir()
        (temp / "sub" / "a.txt").write_text("a")
        (temp / "b.txt").write_text("b")
        assert not final.exists()
    assert (final / "sub" / "a.txt").read_text() == "a" and (final / "b.txt").read_text() == "b"
    assert names(tmp_path) == ["frames"]


def test_dir_failure_removes_everything(tmp_path):
    with pytest.raises(ValueError):
        with atomic_output_dir(tmp_path / "frames") as temp:
            (temp / "0000.png").write_bytes(b"x")
            raise ValueError
    assert names(tmp_path) == []


def test_dir_clobber_rules(tmp_path):
    final = tmp_path / "frames"
    final.mkdir()  # an empty folder made beforehand is simply replaced
    with atomic_output_dir(final) as temp:
        (temp / "new.txt").write_text("1")
    assert names(final) == ["new.txt"]

    with pytest.raises(Champ3dInputError, match="already exists"):
        with atomic_output_dir(final):
            pytest.fail("the block must not run")
    assert names(final) == ["new.txt"]

    with atomic_output_dir(final, overwrite=True) as temp:
        (temp / "newer.txt").write_text("2")
    assert names(final) == ["newer.txt"]
    assert names(tmp_path) == ["frames"]


def test_stale_partials_of_dead_processes_are_removed(tmp_path):
    host = socket.gethostname()
    stale_dir = tmp_path / f"frames.partial-{host}-{dead_pid()}-0badc0de"
    stale_dir.mkdir()
    (stale_dir / "0000.png").write_bytes(b"x")
    stale_file = tmp_path / f"out.mp4.partial-{host}-{dead_pid()}-0badc0de"
    stale_file.write_bytes(b"x")
    alive = tmp_path / f"frames.partial-{host}-{os.getpid()}-12345678"  # a writer that still runs
    alive.mkdir()
    other_host = tmp_path / f"frames.partial-{host}-2-{dead_pid()}-12345678"  # host "<ours>-2"
    other_host.mkdir()

    with atomic_output_dir(tmp_path / "frames") as temp:
        (temp / "0000.png").write_bytes(b"y")
    with atomic_write_path(tmp_path / "out.mp4") as temp:
        temp.write_bytes(b"y")
    assert names(tmp_path) == sorted(["frames", "out.mp4", alive.name, other_host.name])


def test_sigkill_leaves_only_a_partial_and_resume_cleans_it(tmp_path):
    final = tmp_path / "frames"
    script = textwrap.dedent(
        f"""
        import os, signal
        from champ3d.io import atomic_output_dir
        with atomic_output_dir({str(final)!r}) as temp:
            (temp / "0000.png").write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    killed = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL
    (leftover,) = names(tmp_path)
    assert leftover.startswith("frames.partial-")

    with atomic_output_dir(final) as temp:
        (temp / "0000.png").write_bytes(b"whole")
    assert names(tmp_path) == ["frames"]
    assert (final / "0000.png").read_bytes() == b"whole"
