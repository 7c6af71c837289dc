"""The stage cache and content hashes: computed once, complete or absent, one writer per
entry across processes, and a killed writer leaves nothing that counts as a result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from champ3d.jobs.cache import ENTRY_FILE, EntryBusy, StageCache
from champ3d.jobs.hashing import ContentHasher, settings_hash

REPO = Path(__file__).resolve().parents[1]


def write_numbers(folder: Path) -> dict:
    (folder / "numbers.txt").write_text("1 2 3\n")
    (folder / "nested").mkdir()
    (folder / "nested" / "more.txt").write_text("4\n")
    return {"count": 4}


def test_computed_once_then_cached_with_its_manifest(tmp_path):
    cache = StageCache(tmp_path, "run-a")
    first = cache.get_or_compute("stage", "k1", write_numbers, {"settings": {"x": 1}})
    assert first.status == "computed" and first.path == tmp_path / "stage" / "k1"
    assert (first.path / "nested" / "more.txt").read_text() == "4\n"
    manifest = json.loads((first.path / ENTRY_FILE).read_text())
    assert manifest["result"] == {"count": 4} and manifest["settings"] == {"x": 1}
    assert manifest["computed_by"]["run"] == "run-a" and manifest["computed_by"]["pid"] == os.getpid()

    def must_not_run(folder):
        raise AssertionError("a cached entry was rebuilt")

    second = StageCache(tmp_path, "run-b").get_or_compute("stage", "k1", must_not_run, {})
    assert second.status == "cached" and second.manifest == manifest


def test_a_failing_build_leaves_no_entry(tmp_path):
    cache = StageCache(tmp_path, "run")

    def fails(folder):
        (folder / "half.txt").write_text("half")
        raise ValueError("stage failed")

    with pytest.raises(ValueError, match="stage failed"):
        cache.get_or_compute("stage", "k", fails, {})
    assert not (tmp_path / "stage" / "k").exists() and not cache.is_complete("stage", "k")
    assert cache.get_or_compute("stage", "k", write_numbers, {}).status == "computed"


def test_a_folder_without_manifest_is_never_a_result_and_is_rebuilt(tmp_path):
    leftover = tmp_path / "stage" / "k"
    leftover.mkdir(parents=True)
    (leftover / "numbers.txt").write_text("garbage from a killed process")
    cache = StageCache(tmp_path, "run")
    assert not cache.is_complete("stage", "k")
    outcome = cache.get_or_compute("stage", "k", write_numbers, {})
    assert outcome.status == "computed" and (leftover / "numbers.txt").read_text() == "1 2 3\n"


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from champ3d.jobs.cache import StageCache

    root, run, hold = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])

    def build(folder):
        (Path(root) / f"started-{run}").write_text("")
        (folder / "part1.txt").write_text(run)
        time.sleep(hold)
        (folder / "part2.txt").write_text(run)
        return {"by": run}

    outcome = StageCache(root, run).get_or_compute("stage", "shared", build, {})
    print(outcome.status, outcome.manifest["result"]["by"])
""")


def start_child(root: Path, run: str, hold: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), run, str(hold)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_processes_never_compute_one_entry_twice(tmp_path):
    first = start_child(tmp_path, "first", 1.5)
    wait_for(tmp_path / "started-first")
    second = start_child(tmp_path, "second", 0.0)
    with pytest.raises(EntryBusy, match="held by host .* run first"):
        StageCache(tmp_path, "third").get_or_compute("stage", "shared", write_numbers, {}, wait=False)
    outputs = [p.communicate(timeout=120)[0].split() for p in (first, second)]
    assert outputs == [["computed", "first"], ["cached", "first"]]  # the second waited, then found it
    assert not (tmp_path / "started-second").exists()
    assert (tmp_path / "stage" / "shared" / "part2.txt").read_text() == "first"


def test_sigkill_mid_build_releases_the_lock_and_leaves_no_result(tmp_path):
    child = start_child(tmp_path, "doomed", 60.0)
    wait_for(tmp_path / "started-doomed")
    cache = StageCache(tmp_path, "survivor")
    with pytest.raises(EntryBusy):
        cache.get_or_compute("stage", "shared", write_numbers, {}, wait=False)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert (tmp_path / "stage" / "shared" / "part1.txt").exists()  # half-written ...
    assert not cache.is_complete("stage", "shared")  # ... and not a result
    outcome = cache.get_or_compute("stage", "shared", write_numbers, {}, wait=False)
    assert outcome.status == "computed" and outcome.manifest["computed_by"]["run"] == "survivor"
    assert sorted(p.name for p in outcome.path.iterdir()) == [ENTRY_FILE, "nested", "numbers.txt"]


def test_content_hashes_are_remembered_until_the_file_changes(tmp_path):
    data = tmp_path / "clip.bin"
    data.write_bytes(b"frames" * 1000)
    hasher = ContentHasher(tmp_path / "store")
    first = hasher(data)
    records = list((tmp_path / "store").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    record["sha256"] = "remembered"
    records[0].write_text(json.dumps(record))
    assert ContentHasher(tmp_path / "store")(data) == "remembered"  # not read again
    time.sleep(0.01)
    data.write_bytes(b"other" * 1000)
    assert ContentHasher(tmp_path / "store")(data) not in (first, "remembered")


def test_folder_hash_covers_names_and_contents(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:04d}.png").write_bytes(bytes([i]) * 10)
    hasher = ContentHasher(tmp_path / "store")
    before = hasher(folder)
    (folder / "0002.png").rename(folder / "0003.png")
    assert hasher(folder) != before
    assert settings_hash({"a": 1, "b": [1, 2]}) == settings_hash({"b": [1, 2], "a": 1})
