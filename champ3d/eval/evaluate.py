"""Compare a folder of predicted videos with a folder of ground-truth videos under a protocol.

:func:`evaluate` pairs the videos (:mod:`champ3d.eval.frames`), streams the selected and
resized frames of each pair through the pixel and feature metrics of the protocol's
profile, runs the whole-video metrics (:mod:`champ3d.eval.video_metrics`: fits cached under
``fit_cache``, default ``out_dir/fits``), and writes into ``out_dir``:

- ``videos/<video_id>.eval.json`` (+ ``.eval.safetensors``): each video's result
  (:mod:`champ3d.eval.results`), written as soon as the video is done; results of videos
  not in this run are removed from that folder;
- the tables of :func:`champ3d.eval.aggregate.write_tables` (``per_frame.csv``,
  ``per_video.{csv,md,tex}``, ``table.{md,tex}``, ``protocol.json``);
- ``summary.json``: the method's summary (values, bootstrap intervals, counts, definitions,
  weight hashes, provenance; the metrics that could not run under ``unavailable``).

A metric whose weight files are not provided, or that needs guidance folders when none are
given, does not run: it is listed as needing them and every other metric is computed.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from champ3d.body.base import BodyModel
from champ3d.errors import Champ3dInputError
from champ3d.eval.aggregate import write_tables
from champ3d.eval.frames import VideoPair, pair_videos, paired_chunks
from champ3d.eval.protocol import Protocol, load_protocol
from champ3d.eval.registry import BuildContext, MetricSpec, resolve_metrics
from champ3d.eval.report import append_jsonl, headline, write_json
from champ3d.eval.results import FEATURES_SUFFIX, RESULT_SUFFIX, VideoResult
from champ3d.eval.video_metrics import SharedInputs, VideoContext
from champ3d.eval.weights import WeightsStore
from champ3d.provenance import package_versions

_VERSIONED_PACKAGES = ("champ3d", "numpy", "scipy", "torch", "pillow", "av", "pyyaml", "safetensors", "mediapipe",
                       "anny", "scikit-image", "opencv-contrib-python")


@dataclass(frozen=True)
class EvaluationResult:
    summary: dict[str, Any]
    files: dict[str, Path]


def run_versions() -> dict[str, str]:
    """Python's and the packages' versions recorded with every number."""
    return {"python": platform.python_version(), **package_versions(_VERSIONED_PACKAGES)}


def unavailable_metrics(specs: Sequence[MetricSpec], store: WeightsStore,
                        guidance_dir: Optional[Path]) -> dict[str, str]:
    """Metric name -> why it cannot run ("needs FILE, ..." or "needs guidance folders")."""
    reasons = {}
    for spec in specs:
        missing = store.missing(spec.weights)
        if missing:
            reasons[spec.name] = "needs " + ", ".join(missing)
        elif "guidance" in spec.needs and guidance_dir is None:
            reasons[spec.name] = "needs guidance folders"
    return reasons


def evaluate(protocol: str | os.PathLike | Protocol, pred_dir: str | os.PathLike, gt_dir: str | os.PathLike,
             out_dir: str | os.PathLike, *, profile: Optional[str] = None, metrics: Optional[Sequence[str]] = None,
             weights_dir: Optional[str | os.PathLike] = None,
             weights: Optional[Mapping[str, str | os.PathLike]] = None,
             guidance_dir: Optional[str | os.PathLike] = None, fit_cache: Optional[str | os.PathLike] = None,
             body: Optional[BodyModel] = None, method: Optional[str] = None,
             device: str = "cpu", batch_size: int = 8, run_info: Optional[Mapping[str, Any]] = None,
             ledger: Optional[str | os.PathLike] = None) -> EvaluationResult:
    """Evaluate predicted videos against ground truth and write the tables into ``out_dir``.

    ``protocol``: a protocol name, YAML path or :class:`Protocol`. ``profile`` overrides the
    protocol's profile; ``metrics`` restricts its generic metric list. Weights come from
    ``weights_dir`` (default ``$CHAMP3D_WEIGHTS``) or per-file ``weights`` overrides.
    ``guidance_dir`` holds one guidance folder per video id (masks, ``fits/aligned``, orbit
    ``views.safetensors``; see :mod:`champ3d.eval.video_metrics`). ``body`` is the body model
    the fits use (default: a new :class:`champ3d.body.anny_body.AnnyBody`, built only when a
    video needs fitting). ``method`` labels the table row (default: the prediction folder's
    name). ``run_info`` (seeds, checkpoint hash, sampler settings...) is copied into every
    result; ``ledger``, if given, gets one JSON line per run.
    """
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    where = proto.source or proto.name
    profile_name = profile or proto.profile
    generic = proto.metrics if metrics is None else tuple(metrics)
    unknown = [m for m in generic if m not in proto.metrics]
    if unknown:
        raise Champ3dInputError(where, f"metric(s) {unknown} are not part of protocol {proto.name} "
                                f"{list(proto.metrics)}")
    specs = resolve_metrics(generic, profile_name, where)
    pred_dir, gt_dir, out_dir = Path(pred_dir), Path(gt_dir), Path(out_dir)
    store = WeightsStore(weights_dir, weights)
    shared = SharedInputs(Path(fit_cache) if fit_cache is not None else out_dir / "fits",
                          None if guidance_dir is None else Path(guidance_dir), body)
    pairs = pair_videos(pred_dir, gt_dir)
    unavailable = unavailable_metrics(specs, store, shared.guidance_dir)
    available = [spec for spec in specs if spec.name not in unavailable]
    _check_pairs(proto, available, pairs, f"{pred_dir} vs {gt_dir}")

    context = BuildContext(store, torch.device(device), batch_size, proto.clips)
    provenance = {
        "versions": run_versions(),
        "weights_sha256": {name: store.sha256(name, spec.name) for spec in available for name in spec.weights},
        "device": str(context.device),
        "network_dtype": "float32",
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    template = {
        "method": method or pred_dir.name, "protocol": proto.record(), "profile": profile_name,
        "metrics": {spec.name: spec.describe() for spec in available},
        "unavailable": {spec.name: {**spec.describe(), "reason": unavailable[spec.name]}
                        for spec in specs if spec.name in unavailable},
        "provenance": provenance, "run_info": dict(run_info or {}),
    }
    record = {"metric_order": [spec.name for spec in specs], "pred_dir": str(pred_dir), "gt_dir": str(gt_dir),
              "guidance_dir": None if shared.guidance_dir is None else str(shared.guidance_dir)}
    videos = out_dir / "videos"
    results = _measure(proto, available, pairs, context, shared, template, record, videos)
    kept = {f"{r.video_id}{suffix}" for r in results for suffix in (RESULT_SUFFIX, FEATURES_SUFFIX)}
    for stale in videos.iterdir():
        if stale.name.endswith((RESULT_SUFFIX, FEATURES_SUFFIX)) and stale.name not in kept:
            stale.unlink()

    summaries, files = write_tables(results, out_dir)
    summary = summaries[0]
    files["summary"] = write_json(out_dir / "summary.json", summary)
    if ledger is not None:
        append_jsonl(Path(ledger), {"protocol": proto.name, "profile": profile_name, "split": proto.split,
                                    "method": summary["method"], "out_dir": str(out_dir),
                                    "timestamp": provenance["timestamp"],
                                    "values": {n: headline(m)[0] for n, m in summary["metrics"].items()},
                                    "unavailable": unavailable, "weights_sha256": provenance["weights_sha256"]})
    return EvaluationResult(summary, files)


def _check_pairs(proto: Protocol, specs: Sequence[MetricSpec], pairs: Sequence[VideoPair], both_roots: str) -> None:
    for pair in pairs:
        both = f"{pair.pred.path} vs {pair.gt.path}"
        if proto.orbit is not None and pair.num_frames != proto.orbit.views:
            raise Champ3dInputError(both, f"protocol {proto.name} needs {proto.orbit.views} views per video, "
                                    f"got {pair.num_frames} frames")
        if proto.frames.count(pair.num_frames) == 0:
            raise Champ3dInputError(both, f"no frame left to evaluate: {pair.num_frames} frames, "
                                    f"evaluation starts at frame {proto.frames.start}")
    frames = sum(proto.frames.count(p.num_frames) for p in pairs)
    clips = sum(len(proto.clips.starts(proto.frames.count(p.num_frames))) for p in pairs)
    for spec in specs:
        if spec.kind == "distribution" and (frames if spec.row_unit == "frame" else clips) < 2:
            unit = "frames" if spec.row_unit == "frame" else f"clips of {proto.clips.length} frames"
            raise Champ3dInputError(both_roots, f"{spec.name} needs at least 2 {unit} per side")


def _measure(proto: Protocol, specs: Sequence[MetricSpec], pairs: Sequence[VideoPair], context: BuildContext,
             shared: SharedInputs, template: Mapping[str, Any], record: Mapping[str, Any],
             folder: Path) -> list[VideoResult]:
    """Measure every video pair, saving each result into ``folder`` when it is done."""
    pixel_computers = {s.name: s.build(context) for s in specs if s.kind == "frame" and s.input == "pixels"}
    video_computers = {s.name: (s, s.build(context)) for s in specs if s.input == "video"}
    extractors = {}
    for spec in specs:
        if spec.kind == "distribution":
            new_extractor = spec.build(context)
            extractors[spec.name] = (new_extractor(), new_extractor())  # prediction, ground truth
    results = []
    for pair in pairs:
        indices: list[int] = []
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in pixel_computers}
        if pixel_computers or extractors:
            for chunk_indices, pred, gt in paired_chunks(pair, proto.frames, proto.resize):
                indices += chunk_indices
                for name, computer in pixel_computers.items():
                    chunks[name].append(np.asarray(computer(pred, gt), dtype=np.float64))
                for pred_extractor, gt_extractor in extractors.values():
                    pred_extractor.add_frames(pred)
                    gt_extractor.add_frames(gt)
        else:
            indices = [i for i in range(pair.num_frames) if proto.frames.selects(i)]
        frame_values = {name: np.concatenate(parts) for name, parts in chunks.items()}
        video_values = {}
        video = VideoContext(pair, np.asarray(indices), proto.frames.start, shared)
        for name, (spec, computer) in video_computers.items():
            if spec.kind == "frame":
                frame_values[name] = np.asarray(computer(video), dtype=np.float64)
            else:
                video_values[name] = float(computer(video))
        features = {name: (pred_extractor.end_video(), gt_extractor.end_video())
                    for name, (pred_extractor, gt_extractor) in extractors.items()}
        names = pair.pred.frame_names or pair.gt.frame_names
        result = VideoResult(
            video_id=pair.video_id, frame_indices=[int(i) for i in indices],
            frame_names=[names[i] if names else "" for i in indices], n_clips=len(proto.clips.starts(len(indices))),
            frame_values={s.name: frame_values[s.name] for s in specs if s.name in frame_values},
            video_values=video_values, features=features,
            record={**record, "num_frames": pair.num_frames, "evaluated_frames": len(indices),
                    "frame_size": list(pair.frame_size),
                    "pred": {"path": str(pair.pred.path), "sha256": pair.pred.sha256()},
                    "gt": {"path": str(pair.gt.path), "sha256": pair.gt.sha256()},
                    "inputs": video.inputs},
            **template)
        result.save(folder)
        results.append(result)
    return results
