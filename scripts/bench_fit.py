"""Benchmark end-to-end body fitting of a video: decoding, MediaPipe and the optimisation.

Usage::

    python scripts/bench_fit.py --out bench_fit.json [--video VIDEO] [--height 512] [--frames N]

The first ``--frames`` frames of ``--video`` (default: the dance clip of the real-footage
folder) are resized to ``--height`` pixels tall and written to a temporary mp4 (not timed),
so the input is a video of that height. Then:

* ``end_to_end``: :func:`champ3d.guidance.fit_media` on that video, what ``champ3d fit``
  runs (decode, MediaPipe Pose with segmentation and Hands, the optimisation): wall and
  process CPU time, frames per second;
* ``stages``: each stage alone over the same frames, per frame, wall and CPU time:
  ``decode``; MediaPipe ``pose`` (without segmentation), ``segmentation`` (Pose with
  segmentation minus without), ``hands``; ``optimisation`` (the fitter on the end-to-end
  run's detections, whose result must be bit-identical to the end-to-end fit). The
  end-to-end run overlaps Pose and Hands, so its time is below the sum of the stages;
* ``quality`` of the end-to-end fit, as in ``qc.json``: per-frame IoU of the fit's body
  mask (rendered through its own camera) with MediaPipe's person segmentation, and the
  median distance of the projected keypoints to MediaPipe's landmarks in bounding-box
  heights (targets: IoU median >= 0.75, keypoint error median <= 0.04).

Process CPU time counts every thread (MediaPipe computes in threads of its own). On a
shared machine wall time depends on the other load, reported as the load average; CPU
time per frame does much less.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from champ3d.body.anny_body import AnnyBody  # noqa: E402
from champ3d.detect.mediapipe_person import hands_solution, pose_solution  # noqa: E402
from champ3d.fitting.fitter import BodyFitter, FitSettings  # noqa: E402
from champ3d.guidance import fit_media, output_camera, rendered_batches  # noqa: E402
from champ3d.io.frames import open_frames  # noqa: E402
from champ3d.io.writers import VideoWriter  # noqa: E402
from champ3d.qc import mask_iou  # noqa: E402

DEFAULT_VIDEO = Path(os.environ.get("CHAMP3D_FIXTURES", REPO.parent / "shared" / "fixtures")) \
    / "video" / "dance_unianimate_source.mp4"


def resized_video(source: Path, height: int, frames: int | None, out: Path) -> Path:
    """The first ``frames`` frames of ``source`` at ``height`` pixels (even width), as an mp4."""
    video = open_frames(source, max_frames=frames)
    H, W = video.size
    width = max(2, round(W * height / H / 2) * 2)
    with VideoWriter(out, fps=video.frame_rate or 25, crf=16, preset="veryfast") as writer:
        for frame in video:
            writer.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    return out


class Timer:
    """Wall and process CPU seconds of a ``with`` block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def per_frame(timer: Timer, frames: int) -> dict:
    return {"wall_ms": round(timer.wall / frames * 1000, 2), "cpu_ms": round(timer.cpu / frames * 1000, 2)}


def stage_times(video: Path, fitted, body) -> dict:
    with Timer() as decode:
        frames = list(open_frames(video))
    T = len(frames)
    stages = {"decode": per_frame(decode, T)}
    mediapipe = {}
    for name, make in (("pose", lambda: pose_solution(False, segmentation=False)),
                       ("pose_and_segmentation", lambda: pose_solution(False)),
                       ("hands", lambda: hands_solution(False))):
        solution = make()
        solution.process(frames[0])  # graph start-up is not per-frame work
        with Timer() as timer:
            for frame in frames[1:]:
                solution.process(frame)
        solution.close()
        mediapipe[name] = per_frame(timer, T - 1)
    stages["pose"] = mediapipe["pose"]
    stages["segmentation"] = {k: round(mediapipe["pose_and_segmentation"][k] - mediapipe["pose"][k], 2)
                              for k in ("wall_ms", "cpu_ms")}
    stages["hands"] = mediapipe["hands"]
    fitter = BodyFitter(body, FitSettings())
    with Timer() as optimisation:
        refit = fitter.fit(fitted.detections, fitted.fit.camera)
    stages["optimisation"] = per_frame(optimisation, T)
    stages["optimisation"]["identical_to_end_to_end"] = all(
        torch.equal(a, b) for a, b in zip(refit.params.to_dict().values(), fitted.fit.params.to_dict().values())
    )
    return stages


def quality(fitted, body) -> dict:
    fit, det = fitted.fit, fitted.detections
    camera = output_camera(fit.camera, max(fit.camera.height, fit.camera.width))
    ious = []
    for frames, maps, _ in rendered_batches(fit, body, camera):
        for i, t in enumerate(range(frames.start, frames.stop)):
            segmentation = cv2.resize(det.masks[t], (camera.width, camera.height), interpolation=cv2.INTER_LINEAR)
            ious.append(mask_iou(maps.mask[i] > 0, segmentation >= 128))
    ious = np.asarray(ious)
    return {
        "mask_iou_median": round(float(np.median(ious)), 4),
        "mask_iou_min": round(float(ious.min()), 4),
        "keypoint_error_median": round(float(np.median(fit.error_2d)), 5),
        "frames_interpolated": int(fit.interpolated.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--height", type=int, default=512, help="height the video is resized to (px)")
    parser.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    parser.add_argument("--skip-stages", action="store_true", help="end-to-end and quality only")
    args = parser.parse_args()
    if not args.video.is_file():
        parser.error(f"{args.video}: no such video (set CHAMP3D_FIXTURES or pass --video)")

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        video = resized_video(args.video, args.height, args.frames, Path(tmp) / "input.mp4")
        with Timer() as setup:
            body = AnnyBody()
        with Timer() as end_to_end:
            fitted = fit_media(video, body)
        T = fitted.fit.num_frames
        stages = None if args.skip_stages else stage_times(video, fitted, body)
    report = {
        "video": str(args.video),
        "frames": T,
        "size": fitted.info["image_size"],
        "machine": {
            "cpus": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "setup_s": {"body_model": round(setup.wall, 2)},
        "end_to_end": {
            "wall_s": round(end_to_end.wall, 3), "cpu_s": round(end_to_end.cpu, 3),
            "fps": round(T / end_to_end.wall, 2), **per_frame(end_to_end, T),
        },
        "stages": stages,
        "quality": quality(fitted, body),
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(FitSettings()).items()},
    }
    tmp_out = args.out.with_name(args.out.name + ".partial")
    tmp_out.write_text(json.dumps(report, indent=2))
    tmp_out.replace(args.out)
    print(json.dumps({k: report[k] for k in ("frames", "end_to_end", "stages", "quality")}, indent=2))


if __name__ == "__main__":
    main()
