"""End to end: folders of PNG sequences and mp4 files through evaluate(), with tiny networks
saved in the published weight formats."""
from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from champ3d.errors import Champ3dInputError
from champ3d.eval import METRICS, evaluate, write_report
from champ3d.eval.frames import FrameResize
from test_eval_networks import write_tiny_weights

SIZE = (36, 44)  # height, width of the synthetic videos


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """The test networks are tiny: extra threads cost more than they save, and OpenMP
    threads spin badly when the machine's cores are busy."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _video(seed: int, frames: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    phase = rng.uniform(0, 6, size=3)
    video = [np.stack([128 + 90 * np.sin(xx / 5.0 + t / 3.0 + phase[c]) * np.cos(yy / 6.0 - phase[c])
                       for c in range(3)], axis=-1) for t in range(frames)]
    return np.clip(np.stack(video) + rng.normal(0, 6, size=(frames, *SIZE, 3)), 0, 255).astype(np.uint8)


def _write_pngs(folder: Path, video: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(video):
        Image.fromarray(frame).save(folder / f"frame_{i:04d}.png")


def _write_mp4(path: Path, video: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _read_mp4(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    write_tiny_weights(folder)
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two videos of 19 frames: ``a`` as PNG folders on both sides, ``b`` as mp4 prediction
    against a PNG ground truth."""
    root = tmp_path_factory.mktemp("data")
    gt_a, gt_b = _video(1, 19), _video(2, 19)
    rng = np.random.default_rng(9)
    pred_a = np.clip(gt_a.astype(int) + rng.integers(-40, 41, size=gt_a.shape), 0, 255).astype(np.uint8)
    pred_b = np.roll(gt_b, 3, axis=2)
    _write_pngs(root / "gt" / "a", gt_a)
    _write_pngs(root / "gt" / "b", gt_b)
    _write_pngs(root / "pred" / "a", pred_a)
    _write_mp4(root / "pred" / "b.mp4", pred_b)
    return root


def _protocol(tmp_path: Path, profile: str, **extra) -> Path:
    data = {"name": "synthetic", "split": "val", "profile": profile, "reference_frame": "first",
            "frames": {"start": 1, "stride": 1}, "resize": {"size": [32, 32], "crop": "center", "filter": "bicubic"},
            "clips": {"length": 16, "stride": 2}, "metrics": ["L1", "PSNR", "SSIM", "LPIPS", "FID", "FID-VID", "FVD"],
            "bootstrap": {"samples": 200, "distribution_samples": 5, "confidence": 0.9, "seed": 0}, **extra}
    path = tmp_path / "synthetic.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("profile", ["legacy", "clean"])
def test_evaluate_writes_consistent_tables(tmp_path, weights, dataset, profile):
    ledger = tmp_path / "runs.jsonl"
    result = evaluate(_protocol(tmp_path, profile), dataset / "pred", dataset / "gt", tmp_path / "out",
                      weights_dir=weights, method="tiny", run_info={"seed": 42}, ledger=ledger)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["per_frame.csv", "per_video.csv", "per_video.md", "per_video.tex",
                                                     "protocol.json", "summary.json", "table.md", "table.tex",
                                                     "videos"]
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["a.eval.json", "a.eval.safetensors",
                                                                  "b.eval.json", "b.eval.safetensors"]
    summary = result.summary
    with open(out / "summary.json") as handle:
        assert json.load(handle) == json.loads(json.dumps(summary))
    names = [m for m in summary["metrics"]]
    frame_names = [n for n in names if METRICS[n].kind == "frame"]
    assert len(names) == (8 if profile == "legacy" else 7) and summary["unavailable"] == {}

    rows = _read_csv(out / "per_frame.csv")
    assert len(rows) == 2 * 18 and {r["video_id"] for r in rows} == {"a", "b"}
    assert {(r["protocol"], r["profile"], r["split"], r["method"]) for r in rows} == {("synthetic", profile, "val",
                                                                                       "tiny")}
    assert [int(r["frame_idx"]) for r in rows if r["video_id"] == "a"] == list(range(1, 19))
    assert rows[0]["frame_name"] == "frame_0001"

    # the per-frame numbers are the metric functions applied to the resized frames
    resize = FrameResize(32, 32, "center", "bicubic")
    gt_b = np.stack([resize.apply(np.asarray(Image.open(p))) for p in sorted((dataset / "gt" / "b").iterdir())])
    pred_b = np.stack([resize.apply(f) for f in _read_mp4(dataset / "pred" / "b.mp4")])
    for name in frame_names:
        expected = METRICS[name].build(None)(pred_b[1:], gt_b[1:]) if "LPIPS" not in name else None
        got = np.array([float(r[name]) for r in rows if r["video_id"] == "b"])
        if expected is not None:
            np.testing.assert_array_equal(got, expected)
        pooled = np.mean([float(r[name]) for r in rows])
        assert summary["metrics"][name]["frame_pooled"]["value"] == pytest.approx(pooled, rel=1e-12)

    videos = _read_csv(out / "per_video.csv")
    assert [(v["video_id"], v["n_frames"], v["n_clips"]) for v in videos] == [("a", "18", "2"), ("b", "18", "2")]
    for name in names:
        metric = summary["metrics"][name]
        if metric["kind"] == "distribution":
            expected_rows = 36 if METRICS[name].row_unit == "frame" else 4
            assert (metric["n_pred"], metric["n_gt"]) == (expected_rows, expected_rows)
            assert metric["value"] > 0
        assert set(metric["weights_sha256"]) == set(METRICS[name].weights)
        for file, digest in metric["weights_sha256"].items():
            assert digest == hashlib.sha256((weights / file).read_bytes()).hexdigest()

    record = json.loads((out / "protocol.json").read_text())
    assert record["protocol"]["name"] == "synthetic" and record["profile"] == profile
    assert set(record["metrics"]) == set(names)
    video_b = next(v for v in record["methods"]["tiny"]["videos"] if v["video_id"] == "b")
    assert video_b["run_info"] == {"seed": 42}
    assert video_b["pred"]["sha256"] == hashlib.sha256((dataset / "pred" / "b.mp4").read_bytes()).hexdigest()
    assert (video_b["num_frames"], video_b["evaluated_frames"], video_b["frame_size"]) == (19, 18, list(SIZE))
    assert "torch" in video_b["provenance"]["versions"]

    table = (out / "table.md").read_text()
    assert table.startswith("| Method |") and "| tiny |" in table and f"profile {profile}" in table
    assert r"\begin{tabular}" in (out / "table.tex").read_text()
    ledger_line = json.loads(ledger.read_text().splitlines()[-1])
    assert ledger_line["profile"] == profile and set(ledger_line["values"]) == set(names)


def test_identical_prediction_scores_perfectly(tmp_path, weights, dataset):
    protocol = _protocol(tmp_path, "legacy", clips={"length": 16, "stride": 3})  # one clip per video
    result = evaluate(protocol, dataset / "gt", dataset / "gt", tmp_path / "out", weights_dir=weights)
    metrics = result.summary["metrics"]
    assert metrics["L1_disco"]["frame_pooled"]["value"] == 0.0
    assert metrics["PSNR_star"]["frame_pooled"]["value"] == 100.0
    assert metrics["SSIM_gray7"]["frame_pooled"]["value"] == 1.0
    assert metrics["LPIPS_vgg_disco"]["frame_pooled"]["value"] == 0.0
    for name in ("FID_pytorchfid", "FID_VID_3drn50", "FVD_i3d_disco"):
        assert abs(metrics[name]["value"]) < 1e-8


def test_metric_subset_needs_no_weights(tmp_path, dataset):
    result = evaluate(_protocol(tmp_path, "clean"), dataset / "pred", dataset / "gt", tmp_path / "out",
                      metrics=["PSNR", "SSIM"], profile="legacy")
    assert list(result.summary["metrics"]) == ["PSNR_star", "PSNR_legacy_uint8", "SSIM_gray7"]
    assert result.summary["profile"] == "legacy"


def test_missing_weights_are_reported_by_name(tmp_path, dataset):
    """Weight files not provided: those metrics are listed as needing them, the others run."""
    (tmp_path / "empty").mkdir()
    result = evaluate(_protocol(tmp_path, "legacy"), dataset / "pred", dataset / "gt", tmp_path / "out",
                      weights_dir=tmp_path / "empty", metrics=["PSNR", "LPIPS", "FVD"])
    summary = result.summary
    assert list(summary["metrics"]) == ["PSNR_star", "PSNR_legacy_uint8"]
    assert summary["unavailable"]["FVD_i3d_disco"]["reason"] == "needs i3d_pretrained_400.pt"
    assert summary["unavailable"]["LPIPS_vgg_disco"]["reason"] == "needs vgg16-397923af.pth, vgg.pth"
    assert summary["columns"] == ["PSNR_star", "PSNR_legacy_uint8", "LPIPS_vgg_disco", "FVD_i3d_disco"]
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| needs vgg16-397923af.pth, vgg.pth | needs i3d_pretrained_400.pt |" in table
    assert "needs i3d\\_pretrained\\_400.pt" in (tmp_path / "out" / "table.tex").read_text()


@pytest.mark.parametrize("kwargs, field", [
    ({"weights_dir": "no_such_folder"}, "weights_dir"),
    ({"weights": {"i3d_pretrained_400.pt": "no_such_file.pt"}}, "weights.i3d_pretrained_400.pt"),
    ({"guidance_dir": "no_such_guidance"}, "guidance_dir"),
])
def test_configured_paths_that_do_not_exist_are_errors(tmp_path, dataset, kwargs, field):
    kwargs = {k: (tmp_path / v if isinstance(v, str) else {n: tmp_path / f for n, f in v.items()})
              for k, v in kwargs.items()}
    with pytest.raises(Champ3dInputError) as error:
        evaluate(_protocol(tmp_path, "legacy"), dataset / "pred", dataset / "gt", tmp_path / "out",
                 metrics=["PSNR", "FVD"], **kwargs)
    assert error.value.where == field and "does not exist" in error.value.problem
    assert not (tmp_path / "out").exists()


def test_weights_folder_from_the_environment_must_exist(tmp_path, dataset, monkeypatch):
    monkeypatch.setenv("CHAMP3D_WEIGHTS", str(tmp_path / "gone"))
    with pytest.raises(Champ3dInputError, match=r"\$CHAMP3D_WEIGHTS: weights folder .*gone does not exist"):
        evaluate(_protocol(tmp_path, "legacy"), dataset / "pred", dataset / "gt", tmp_path / "out", metrics=["FVD"])


def test_report_aggregates_results_of_several_methods(tmp_path, weights, dataset):
    """Two methods evaluated into one run folder: the report gives one row each, with the
    values evaluate() gave, and refuses results it cannot put in one table."""
    protocol = _protocol(tmp_path, "clean")
    run = tmp_path / "run"
    (tmp_path / "no_weights").mkdir()
    first = evaluate(protocol, dataset / "pred", dataset / "gt", run / "noisy", weights_dir=weights,
                     metrics=["L1", "PSNR", "FID"], method="noisy")
    second = evaluate(protocol, dataset / "gt", dataset / "gt", run / "perfect", weights_dir=tmp_path / "no_weights",
                      metrics=["L1", "PSNR", "FID"], method="perfect")
    summary, files = write_report(run)
    assert [m["method"] for m in summary["methods"]] == ["noisy", "perfect"]
    assert summary["methods"][0]["metrics"] == json.loads(json.dumps(first.summary["metrics"]))
    assert summary["methods"][1]["unavailable"]["FID_clean"]["reason"] == "needs inception-2015-12-05.pt"
    assert second.summary["metrics"]["L1"]["frame_pooled"]["value"] == 0.0
    table = files["table_md"].read_text()
    assert "| noisy |" in table and "| perfect | 0.0000 | ∞ | needs inception-2015-12-05.pt |" in table
    videos = _read_csv(files["per_video"])
    assert [(v["method"], v["video_id"]) for v in videos] == [("noisy", "a"), ("noisy", "b"), ("perfect", "a"),
                                                              ("perfect", "b")]
    assert "| perfect | b | 18 |" in files["per_video_md"].read_text()
    assert files["summary"] == run / "report" / "summary.json"

    evaluate(protocol, dataset / "pred", dataset / "gt", run / "legacy", metrics=["PSNR"], profile="legacy",
             method="legacy")
    with pytest.raises(Champ3dInputError, match=r"profiles legacy and clean .*\(field profile\)"):
        write_report(run)
    (tmp_path / "variant").mkdir()
    evaluate(_protocol(tmp_path / "variant", "clean", clips={"length": 8, "stride": 2}), dataset / "pred",
             dataset / "gt", run / "legacy", metrics=["PSNR"], method="legacy")
    with pytest.raises(Champ3dInputError, match=r"\(field protocol.clips.length\)"):
        write_report(run)
    (run / "legacy" / "videos" / "a.eval.json").unlink()
    (run / "legacy" / "videos" / "b.eval.json").unlink()
    for side in ("pred", "gt"):
        shutil.copytree(dataset / "gt" / "a", tmp_path / f"{side}_c" / "c")
    evaluate(protocol, tmp_path / "pred_c", tmp_path / "gt_c", run / "perfect_c", weights_dir=weights,
             metrics=["L1", "PSNR", "FID"], method="perfect")
    with pytest.raises(Champ3dInputError, match=r"method perfect: different metrics could run \(field unavailable"):
        write_report(run)
    shutil.rmtree(run / "perfect_c")
    duplicate = run / "copy"
    duplicate.mkdir()
    (duplicate / "a.eval.json").write_text((run / "perfect" / "videos" / "a.eval.json").read_text())
    with pytest.raises(Champ3dInputError, match="video a of method perfect evaluated twice"):
        write_report(run)
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(Champ3dInputError, match="no per-video evaluation results"):
        write_report(tmp_path / "empty_run")


def test_mismatched_inputs_name_both_sides(tmp_path, dataset):
    protocol = _protocol(tmp_path, "clean")
    short = tmp_path / "short"
    _write_pngs(short / "a", _video(1, 18))
    _write_mp4(short / "b.mp4", _video(2, 19))
    with pytest.raises(Champ3dInputError) as error:
        evaluate(protocol, short, dataset / "gt", tmp_path / "out", metrics=["PSNR"])
    message = str(error.value)
    assert str(short / "a") in message and str(dataset / "gt" / "a") in message and "18 frames" in message
    assert "video a: frame count differs" in message

    small = tmp_path / "small"
    _write_pngs(small / "a", _video(1, 19)[:, :30])
    _write_pngs(small / "b", _video(2, 19))
    with pytest.raises(Champ3dInputError, match=r"small/a vs .*gt/a: video a: frame size differs.*44x30.*44x36"):
        evaluate(protocol, small, dataset / "gt", tmp_path / "out", metrics=["PSNR"])

    renamed = tmp_path / "renamed"
    _write_pngs(renamed / "a", _video(1, 19))
    (renamed / "a" / "frame_0005.png").rename(renamed / "a" / "frame_0005b.png")
    _write_pngs(renamed / "b", _video(2, 19))
    with pytest.raises(Champ3dInputError, match="frame names differ at position 5"):
        evaluate(protocol, renamed, dataset / "gt", tmp_path / "out", metrics=["PSNR"])

    missing = tmp_path / "missing"
    _write_pngs(missing / "a", _video(1, 19))
    with pytest.raises(Champ3dInputError, match=r"only in ground truth \['b'\]"):
        evaluate(protocol, missing, dataset / "gt", tmp_path / "out", metrics=["PSNR"])


def test_orbit_needs_the_announced_view_count(tmp_path, dataset):
    protocol = _protocol(tmp_path, "clean", orbit={"views": 30, "step_deg": 12.0})
    with pytest.raises(Champ3dInputError, match="needs 30 views per video, got 19 frames"):
        evaluate(protocol, dataset / "pred", dataset / "gt", tmp_path / "out", metrics=["PSNR"])


def test_orbit_rows_carry_the_view_angle(tmp_path):
    views = _video(4, 30)
    _write_pngs(tmp_path / "gt" / "human_01", views)
    _write_pngs(tmp_path / "pred" / "human_01", views[:, ::-1].copy())
    result = evaluate("orbit", tmp_path / "pred", tmp_path / "gt", tmp_path / "out", metrics=["L1", "PSNR"])
    rows = _read_csv(result.files["per_frame"])
    assert [float(r["view_deg"]) for r in rows] == [12.0 * i for i in range(30)]
    assert result.summary["n_frames"] == 30 and not math.isnan(result.summary["metrics"]["L1"]["frame_pooled"]["value"])
