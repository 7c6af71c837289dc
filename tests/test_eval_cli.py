"""``champ3d eval`` and ``champ3d report`` through the command line: results, and bad input
answered with exit status 2 and a message naming the case and the field."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from champ3d.cli import main


def _video(folder: Path, frames: int, size=(24, 32), seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(frames):
        Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture
def folders(tmp_path):
    _video(tmp_path / "gt" / "clip", 6, seed=1)
    _video(tmp_path / "pred" / "clip", 6, seed=2)
    return tmp_path


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("champ3d: error: "), lines
    return lines[0]


def test_eval_then_report(folders, capsys):
    run = folders / "run"
    code = main(["eval", "--protocol", "ubc_self", "--pred", str(folders / "pred"), "--gt", str(folders / "gt"),
                 "--out", str(run / "method_a"), "--metrics", "PSNR", "SSIM", "LPIPS", "--weights-dir",
                 str(folders)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| pred |" in printed and "needs vgg16-397923af.pth, vgg.pth" in printed
    summary = json.loads((run / "method_a" / "summary.json").read_text())
    assert summary["protocol"] == "ubc_self" and summary["n_frames"] == 5  # frame 0 is the reference
    assert main(["report", str(run)]) == 0
    report = json.loads((run / "report" / "summary.json").read_text())
    assert report["methods"][0]["metrics"]["PSNR_star"] == summary["metrics"]["PSNR_star"]
    assert (run / "report" / "table.tex").read_text().startswith(r"\begin{tabular}")


@pytest.mark.parametrize("change, field", [
    (["--protocol", "tiktok"], "no protocol named 'tiktok'"),
    (["--pred", "{tmp}/nowhere"], "--pred: folder"),
    (["--gt", "{tmp}/nowhere"], "--gt: folder"),
    (["--weights-dir", "{tmp}/no_weights"], "weights_dir: weights folder"),
    (["--guidance", "{tmp}/no_guidance"], "guidance_dir: guidance folder"),
    (["--metrics", "FOO"], "metric(s) ['FOO'] are not part of protocol ubc_self"),
])
def test_eval_bad_options(folders, capsys, change, field):
    args = {"--protocol": "ubc_self", "--pred": str(folders / "pred"), "--gt": str(folders / "gt"),
            "--out": str(folders / "out")}
    args[change[0]] = change[1].format(tmp=folders)
    argv = ["eval"] + [item for pair in args.items() for item in pair]
    assert main(argv) == 2
    assert field in _error(capsys)
    assert not (folders / "out").exists()


@pytest.mark.parametrize("frames, size, message", [
    (5, (24, 32), "video clip: frame count differs, prediction has 5 frames, ground truth 6"),
    (6, (24, 30), "video clip: frame size differs, prediction frames are 30x24, ground truth 32x24"),
])
def test_eval_prediction_and_ground_truth_must_match(tmp_path, capsys, frames, size, message):
    _video(tmp_path / "gt" / "clip", 6)
    _video(tmp_path / "pred" / "clip", frames, size)
    assert main(["eval", "--protocol", "ubc_self", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                 "--out", str(tmp_path / "out"), "--metrics", "PSNR"]) == 2
    error = _error(capsys)
    assert message in error and str(tmp_path / "pred" / "clip") in error and str(tmp_path / "gt" / "clip") in error
    assert not (tmp_path / "out").exists()


def test_report_bad_input(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "run folder does not exist" in _error(capsys)
    assert main(["report", str(tmp_path)]) == 2
    assert "no per-video evaluation results" in _error(capsys)
    (tmp_path / "broken.eval.json").write_text("{not json")
    assert main(["report", str(tmp_path)]) == 2
    assert "broken.eval.json: unreadable evaluation result" in _error(capsys)
