"""Evaluating a case's generated video against its ground truth (the ``evaluate`` stage).

The stage writes into its result folder::

    pred/<case>.mp4        link to the generated video (into the generate result)
    gt/<case>/NNNN.png     the first N ground-truth frames (N = generated frames), resized to
                           the generated size with OpenCV's area filter (cubic when
                           enlarging): generation happens in the reference camera, which for
                           self-reenactment is the ground-truth camera, so the pixels match
    guidance/<case>        link to the case's guidance folder (pose target, masks)
    fits/                  fits of the generated video (pose metrics)
    metrics/               champ3d.eval.evaluate's output; metrics/videos/<case>.eval.json
                           is the per-video result the job report aggregates

Every metric of the protocol runs (:func:`champ3d.eval.evaluate`) except those whose
weight files are not in the case's ``metric_weights`` folder (default ``$CHAMP3D_WEIGHTS``;
the result lists them as needing the files). The distribution metrics (FID, FID-VID, FVD)
store their feature rows with the result and are pooled over all the job's videos in the
report; like every evaluation, a video too short for them (fewer than 2 frames, or 2
clips of the protocol's length) is refused, naming the metric.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2

from champ3d.errors import Champ3dInputError
from champ3d.jobs.spec import CaseSpec


def _protocol(case: CaseSpec):
    from champ3d.eval.protocol import load_protocol

    proto = load_protocol(case.protocol)
    return proto, case.profile or proto.profile


def _specs(case: CaseSpec):
    from champ3d.eval.registry import resolve_metrics

    proto, profile = _protocol(case)
    return resolve_metrics(proto.metrics, profile, proto.source or proto.name)


def case_metric_settings(case: CaseSpec) -> dict:
    """What the evaluate stage's key holds besides its inputs: the protocol, the profile, the
    case's video id and method label, and which metrics lack their weight files."""
    from champ3d.eval.weights import WeightsStore

    proto, profile = _protocol(case)
    record = proto.record()
    record.pop("source")
    store = WeightsStore(case.metric_weights)
    lacking = sorted(spec.name for spec in _specs(case) if store.missing(spec.weights))
    return {"protocol": record, "profile": profile, "video_id": case.name, "method": case.generator,
            "lacking_weights": lacking}


def case_metric_inputs(case: CaseSpec) -> dict[str, Path]:
    """Ground truth and the weight files the case's metrics use (their content is part of the key)."""
    from champ3d.eval.weights import WeightsStore

    store = WeightsStore(case.metric_weights)
    names = sorted({name for spec in _specs(case) if not store.missing(spec.weights) for name in spec.weights})
    return {"gt": case.gt, **{f"weights/{name}": store.path(name, "evaluate") for name in names}}


def write_ground_truth(case: CaseSpec, num_frames: int, size: tuple[int, int], folder: Path) -> None:
    """The first ``num_frames`` frames of ``case.gt`` at ``size`` (H, W) as ``folder/NNNN.png``."""
    from champ3d.io.frames import open_frames
    from champ3d.io.writers import PngSequenceWriter

    height, width = size
    written = 0
    folder.parent.mkdir(parents=True, exist_ok=True)
    with PngSequenceWriter(folder) as frames:
        for frame in open_frames(case.gt, max_frames=num_frames):
            if frame.shape[:2] != size:
                shrink = frame.shape[0] >= height
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
            frames.write(frame)
            written += 1
        if written < num_frames:
            raise Champ3dInputError(f"{case.name}.gt", f"{case.gt} has {written} frames; "
                                    f"the generated video has {num_frames}")


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(target, link.parent), link)


def evaluate_case(body, case: CaseSpec, video: Path, guidance: Path, out: Path) -> dict:
    """Evaluate ``video`` (the case's generation from the guidance folder ``guidance``) into ``out``."""
    from champ3d.eval.evaluate import evaluate
    from champ3d.eval.frames import VideoSource
    from champ3d.eval.report import headline

    proto, profile = _protocol(case)
    source = VideoSource(case.name, video, None)
    num_frames = source.frame_count()
    _link(video, out / "pred" / f"{case.name}.mp4")
    _link(guidance, out / "guidance" / case.name)
    write_ground_truth(case, num_frames, source.frame_size(), out / "gt" / case.name)
    result = evaluate(proto, out / "pred", out / "gt", out / "metrics", profile=profile,
                      weights_dir=case.metric_weights,
                      guidance_dir=out / "guidance", fit_cache=out / "fits", body=body, method=case.generator,
                      run_info={"case": case.name, "generator": case.generator, "seed": case.seed})
    return {"metrics": {name: headline(metric)[0] for name, metric in result.summary["metrics"].items()},
            "unavailable": sorted(result.summary.get("unavailable", {}))}
