"""``champ3d batch`` end to end on real footage (synthetic inputs when it is absent): a
self-reenactment case and a photo driven by the same clip, every stage real.

Runs go through the command line in subprocesses, so SIGKILL hits a real job. The reference
run is uninterrupted; the others (rerun, killed and restarted, two concurrent shards) must
give the same results. "The same" is byte for byte, except in JSON files, where the output
folder's own path and wall-clock timestamps are masked; stage manifests (timings, process
ids) are compared through the run records instead.

Subprocesses run with one torch thread (fits are also equal across thread counts). mp4 files
compare byte for byte because champ3d.io.VideoWriter encodes without x264's macroblock-tree
rate control, which otherwise makes the bytes vary between processes.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from champ3d.jobs.cache import ENTRY_FILE

from conftest import real_fixtures_dir

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
STAGES = ("fit_reference", "fit_driving", "guidance", "generate", "evaluate")
JOB = """\
output: out
defaults: {{size: 128, max_frames: 5, atlas_size: 128,
           fit: {{shape_iterations: [10, 15], pose_iterations: [5, 10]}}}}
cases:
  - {{name: self, ref: {clip}, driving: {clip}, gt: {clip}, protocol: ubc_self}}
  - {{name: photo, ref: {photo}, driving: {clip}, background: '#203040'}}
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    fixtures = real_fixtures_dir()
    clip = fixtures / "video" / "ubc_fashion_91BjuE6irxS.mp4"
    photo = fixtures / "images" / "deepfashion_00004955.jpg"
    if clip.is_file() and photo.is_file():
        return {"clip": clip, "photo": photo}
    from champ3d.body.anny_body import AnnyBody
    from champ3d.demo import synthesise_inputs

    photo, clip = synthesise_inputs(tmp_path_factory.mktemp("synthetic"), AnnyBody())
    return {"clip": clip, "photo": photo}


def write_job(folder: Path, inputs: dict, text: str = JOB) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.yaml"
    path.write_text(text.format(**inputs))
    return path


def batch(job: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "champ3d.cli", "batch", str(job), *args]


def run_batch(job: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(batch(job, *args), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == expect, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def reference(tmp_path_factory, inputs) -> dict:
    job = write_job(tmp_path_factory.mktemp("reference"), inputs)
    started = time.monotonic()
    run_batch(job)
    return {"job": job, "out": job.parent / "out", "seconds": time.monotonic() - started}


# -- comparing results ----------------------------------------------------------------------

def _masked(data, root: str):
    if isinstance(data, dict):
        return {k: _masked(v, root) for k, v in data.items() if k not in ("timestamp", "timestamps")}
    if isinstance(data, list):
        return [_masked(v, root) for v in data]
    return data.replace(root, "<out>") if isinstance(data, str) else data


def entry_contents(folder: Path, out: Path) -> dict:
    contents = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            contents[name] = ("link", os.readlink(path))
        elif path.is_file() and path.name != ENTRY_FILE:
            contents[name] = _masked(json.loads(path.read_text()), str(out)) if path.suffix == ".json" \
                else path.read_bytes()
    return contents


def complete_entries(out: Path) -> dict[tuple[str, str], Path]:
    return {(stage, entry.parent.name): entry.parent for stage in STAGES
            for entry in (out / ".cache" / stage).glob(f"*/{ENTRY_FILE}")}


def assert_same_results(out: Path, reference_out: Path, all_done: bool = True) -> None:
    """Every complete entry of ``out`` equals the reference's (and, if ``all_done``, all are there)."""
    ours, theirs = complete_entries(out), complete_entries(reference_out)
    if all_done:
        assert set(ours) == set(theirs)
    for name in ours:
        assert name in theirs, f"{name} is not a result of the uninterrupted run"
        assert entry_contents(ours[name], out) == entry_contents(theirs[name], reference_out), name


def stage_log(out: Path) -> list[dict]:
    return [json.loads(line) for case in ("self", "photo") if (out / case / "stages.jsonl").exists()
            for line in (out / case / "stages.jsonl").read_text().splitlines()]


def records(out: Path) -> dict[str, dict]:
    return {case: json.loads((out / case / "run.json").read_text()) for case in ("self", "photo")}


# -- tests ----------------------------------------------------------------------------------

def test_job_runs_to_a_report_with_run_records(reference):
    out = reference["out"]
    runs = records(out)
    assert [runs["self"]["stages"][s]["status"] for s in STAGES] == ["computed"] * 5
    assert list(runs["photo"]["stages"]) == list(STAGES[:4])  # no ground truth: no evaluate
    # one fit of the driving clip serves both cases
    assert runs["photo"]["stages"]["fit_driving"]["status"] == "cached"
    assert runs["photo"]["stages"]["fit_driving"]["key"] == runs["self"]["stages"]["fit_driving"]["key"]
    record = runs["self"]
    assert {"champ3d", "torch", "mediapipe", "anny", "numpy"} <= set(record["versions"])
    assert record["seed"] == 0 and len(record["inputs"]["driving"]["sha256"]) == 64
    assert record["stages"]["fit_driving"]["compute_seconds"] > 0
    for case in ("self", "photo"):
        assert (out / case / "video.mp4").resolve().is_file()
        assert (out / case / "guidance" / "depth" / "0004.png").is_file()
    assert (out / "self" / "metrics" / "videos" / "self.eval.json").is_file()

    report = json.loads((out / "report.json").read_text())
    assert [c["status"] for c in report["cases"]] == ["done", "done"]
    (group,) = report["evaluations"]
    metrics = group["summary"]["methods"][0]["metrics"]
    assert {"PSNR_star", "SSIM_gray7", "MPJPE", "PA_MPJPE", "mask_IoU"} <= set(metrics)
    assert metrics["mask_IoU"]["frame_pooled"]["value"] > 0.5
    markdown = (out / "report.md").read_text()
    assert "needs vgg16-397923af.pth" in markdown and "| self | done | mesh |" in markdown
    assert (out / "report.csv").read_text().count("\n") == 2 and (out / "report.tex").is_file()


def test_second_run_takes_every_stage_from_the_cache(reference):
    out = reference["out"]
    before = {name: folder.stat().st_mtime_ns for name, folder in complete_entries(out).items()}
    run_batch(reference["job"])
    for case, record in records(out).items():
        assert {s["status"] for s in record["stages"].values()} == {"cached"}, case
    assert {name: folder.stat().st_mtime_ns for name, folder in complete_entries(out).items()} == before
    assert "0 stage result(s) to compute" in run_batch(reference["job"], "--dry-run").stdout


def test_sigkill_at_random_points_then_rerun_matches_the_uninterrupted_run(reference, inputs, tmp_path):
    job = write_job(tmp_path, inputs)
    out = job.parent / "out"
    rng = random.Random(1)
    for attempt in range(3):
        delay = rng.uniform(0.4, 0.9) * reference["seconds"]
        process = subprocess.Popen(batch(job), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        # whatever looks finished is finished: equal to the uninterrupted run's result
        assert_same_results(out, reference["out"], all_done=False)
    done_before = set(complete_entries(out))
    assert done_before, "no kill came after a finished stage; the test proved nothing"
    run_batch(job)
    assert_same_results(out, reference["out"])
    computed = Counter((line["stage"], line["key"]) for line in stage_log(out) if line["status"] == "computed")
    assert max(computed.values()) == 1, "a stage was computed twice"
    for case, record in records(out).items():
        for stage, entry in record["stages"].items():
            if (stage, entry["key"]) in done_before:
                assert entry["status"] == "cached", (case, stage)


def test_concurrent_shards_together_equal_the_unsharded_run(reference, inputs, tmp_path):
    job = write_job(tmp_path, inputs)
    out = job.parent / "out"
    shards = [subprocess.Popen(batch(job, "--shard", f"{k}/2"), cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for k in range(2)]
    for shard in shards:
        _, err = shard.communicate(timeout=600)
        assert shard.returncode == 0, err[-4000:]
    assert_same_results(out, reference["out"])
    runs = records(out)
    assert runs["self"]["run"]["shard"] == "0/2" and runs["photo"]["run"]["shard"] == "1/2"
    computed = Counter((line["stage"], line["key"]) for line in stage_log(out) if line["status"] == "computed")
    assert max(computed.values()) == 1
    assert sum(1 for stage, _ in computed if stage == "fit_driving") == 1  # the shared fit, once
    assert json.loads((out / "report.json").read_text())["cases"][1]["status"] == "done"


def test_a_failing_case_is_recorded_and_the_others_finish(reference, inputs, tmp_path):
    shutil.copytree(reference["out"] / ".cache", tmp_path / "out" / ".cache", symlinks=True)
    job = write_job(tmp_path, inputs, JOB + "  - {{name: short_gt, ref: {clip}, driving: {clip}, gt: {photo}, "
                                            "protocol: ubc_self}}\n")
    result = run_batch(job, expect=1)
    assert "1 failed: short_gt" in result.stdout
    record = json.loads((tmp_path / "out" / "short_gt" / "run.json").read_text())
    assert record["status"] == "failed" and record["error"]["stage"] == "evaluate"
    assert record["error"]["message"].startswith("short_gt.gt: ") and "has 1 frames" in record["error"]["message"]
    assert [record["stages"][s]["status"] for s in STAGES[:4]] == ["cached"] * 4
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [c["status"] for c in report["cases"]] == ["done", "done", "failed"]


def test_champ_generator_runs_on_the_cached_guidance(reference, inputs, tmp_path):
    from champ_tiny import write_weights_folder

    write_weights_folder(tmp_path / "pretrained_models")
    shutil.copytree(reference["out"] / ".cache", tmp_path / "out" / ".cache", symlinks=True)
    job = write_job(tmp_path, inputs, JOB.split("cases:")[0] + (
        "cases:\n  - {{name: photo_champ, ref: {photo}, driving: {clip}, generator: champ, "
        "weights: pretrained_models, generator_config: {{steps: 2, context_frames: 8, context_overlap: 2}}}}\n"))
    run_batch(job)
    record = json.loads((tmp_path / "out" / "photo_champ" / "run.json").read_text())
    assert [record["stages"][s]["status"] for s in STAGES[:4]] == ["cached", "cached", "cached", "computed"]
    settings = json.loads((tmp_path / "out" / "photo_champ" / "video.mp4").resolve().with_name(ENTRY_FILE)
                          .read_text())["settings"]
    assert settings["generator"] == "champ" and settings["settings"]["steps"] == 2
    assert settings["settings"]["seed"] == 0  # the case's seed, not the settings file's
    assert record["stages"]["generate"]["result"]["frames"] == 5
