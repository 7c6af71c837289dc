"""Compare a folder of predicted videos with a folder of ground-truth videos under a protocol.

:func:`evaluate` pairs the videos (:mod:`champ3d.eval.frames`), streams the selected and
resized frames of each pair through every metric of the protocol's profile, aggregates
(:mod:`champ3d.eval.stats`) and writes into ``out_dir``:

- ``per_frame.csv``: one row per evaluated frame, one column per frame metric;
- ``per_video.csv``: per-video means, evaluated frame and clip counts;
- ``summary.json``: per metric the values, bootstrap intervals, counts, definition and
  weight hashes, plus provenance (package versions, device, timestamp);
- ``protocol.json``: the reproducibility record (protocol, profile, metric definitions,
  videos with sha256 of both sides, weights, versions, caller's ``run_info``);
- ``table.md`` / ``table.tex``: the headline table.

Every CSV row carries protocol, profile and split.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from champ3d.errors import Champ3dInputError
from champ3d.eval.frames import VideoPair, pair_videos, paired_chunks
from champ3d.eval.protocol import Protocol, load_protocol
from champ3d.eval.registry import PROFILES, BuildContext, MetricSpec, resolve_metrics
from champ3d.eval.report import append_jsonl, atomic_write_text, latex_table, markdown_table, write_csv, write_json
from champ3d.eval.stats import summarise_distribution_metric, summarise_frame_metric
from champ3d.eval.weights import WeightsStore

_VERSIONED_PACKAGES = ("champ3d", "numpy", "scipy", "torch", "pillow", "av", "pyyaml", "safetensors")


@dataclass(frozen=True)
class EvaluationResult:
    summary: dict[str, Any]
    files: dict[str, Path]


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def evaluate(protocol: str | os.PathLike | Protocol, pred_dir: str | os.PathLike, gt_dir: str | os.PathLike,
             out_dir: str | os.PathLike, *, profile: Optional[str] = None, metrics: Optional[Sequence[str]] = None,
             weights_dir: Optional[str | os.PathLike] = None,
             weights: Optional[Mapping[str, str | os.PathLike]] = None, method: Optional[str] = None,
             device: str = "cpu", batch_size: int = 8, run_info: Optional[Mapping[str, Any]] = None,
             ledger: Optional[str | os.PathLike] = None) -> EvaluationResult:
    """Evaluate predicted videos against ground truth and write the tables into ``out_dir``.

    ``protocol``: a protocol name, YAML path or :class:`Protocol`. ``profile`` overrides the
    protocol's profile; ``metrics`` restricts its generic metric list. Weights come from
    ``weights_dir`` (default ``$CHAMP3D_WEIGHTS``) or per-file ``weights`` overrides.
    ``method`` labels the table row (default: the prediction folder's name). ``run_info``
    (seeds, checkpoint hash, sampler settings...) is copied into ``protocol.json``;
    ``ledger``, if given, gets one JSON line per run.
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
    pairs = pair_videos(pred_dir, gt_dir)
    _check_pairs(proto, specs, pairs, f"{pred_dir} vs {gt_dir}")

    store = WeightsStore(weights_dir, weights)
    for spec in specs:  # fail on a missing file before any video is read
        for name in spec.weights:
            store.path(name, spec.name)
    context = BuildContext(store, torch.device(device), batch_size, proto.clips)
    labels = {"protocol": proto.name, "profile": profile_name, "split": proto.split}
    measured = _measure(proto, specs, pairs, context, labels)

    weights_sha = {name: store.sha256(name, spec.name) for spec in specs for name in spec.weights}
    provenance = {
        "versions": package_versions(),
        "weights_sha256": weights_sha,
        "device": str(context.device),
        "network_dtype": "float32",
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    summary = {
        **labels, "method": method or pred_dir.name,
        "n_videos": len(pairs), "n_frames": len(measured.frame_rows),
        "metrics": {spec.name: _summarise(spec, measured, proto, weights_sha) for spec in specs},
        "bootstrap": asdict(proto.bootstrap),
        "provenance": provenance,
    }
    record = {
        "protocol": proto.record(),
        "profile": {"name": profile_name, "description": PROFILES[profile_name].description,
                    "variants": {g: list(PROFILES[profile_name].variants[g]) for g in generic}},
        "metrics": {s.name: {"definition": s.definition, "weights": list(s.weights)} for s in specs},
        "pred_dir": str(pred_dir), "gt_dir": str(gt_dir), "method": summary["method"],
        "videos": measured.video_records,
        "provenance": provenance,
        "run_info": dict(run_info or {}),
    }
    frame_names = [s.name for s in specs if s.kind == "frame"]
    frame_columns = list(labels) + ["video_id", "frame_idx", "frame_name"] + \
        (["view_deg"] if proto.orbit is not None else []) + frame_names
    video_columns = list(labels) + ["video_id", "n_frames", "n_clips"] + frame_names
    files = {
        "per_frame": write_csv(out_dir / "per_frame.csv", frame_columns, measured.frame_rows),
        "per_video": write_csv(out_dir / "per_video.csv", video_columns, measured.video_rows),
        "summary": write_json(out_dir / "summary.json", summary),
        "protocol": write_json(out_dir / "protocol.json", record),
        "table_md": atomic_write_text(out_dir / "table.md", markdown_table(summary)),
        "table_tex": atomic_write_text(out_dir / "table.tex", latex_table(summary)),
    }
    if ledger is not None:
        headline = {name: (m["frame_pooled"]["value"] if m["kind"] == "frame" else m["value"])
                    for name, m in summary["metrics"].items()}
        append_jsonl(Path(ledger), {**labels, "method": summary["method"], "out_dir": str(out_dir),
                                    "timestamp": provenance["timestamp"], "values": headline,
                                    "weights_sha256": weights_sha})
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


@dataclass
class _Measurements:
    frame_rows: list[dict[str, Any]] = field(default_factory=list)
    video_rows: list[dict[str, Any]] = field(default_factory=list)
    video_records: list[dict[str, Any]] = field(default_factory=list)
    frame_values: dict[str, list[np.ndarray]] = field(default_factory=dict)  # metric -> per-video arrays
    features: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = field(default_factory=dict)  # pred, gt


def _measure(proto: Protocol, specs: Sequence[MetricSpec], pairs: Sequence[VideoPair], context: BuildContext,
             labels: Mapping[str, str]) -> _Measurements:
    """Stream every video pair through the metrics."""
    frame_computers = {s.name: s.build(context) for s in specs if s.kind == "frame"}
    extractors = {}
    for spec in specs:
        if spec.kind == "distribution":
            new_extractor = spec.build(context)
            extractors[spec.name] = (new_extractor(), new_extractor())  # prediction, ground truth
    out = _Measurements(frame_values={name: [] for name in frame_computers},
                        features={name: ([], []) for name in extractors})
    for pair in pairs:
        indices: list[int] = []
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in frame_computers}
        for chunk_indices, pred, gt in paired_chunks(pair, proto.frames, proto.resize):
            indices += chunk_indices
            for name, computer in frame_computers.items():
                chunks[name].append(np.asarray(computer(pred, gt), dtype=np.float64))
            for pred_extractor, gt_extractor in extractors.values():
                pred_extractor.add_frames(pred)
                gt_extractor.add_frames(gt)
        values = {name: np.concatenate(parts) for name, parts in chunks.items()}
        for name, (pred_extractor, gt_extractor) in extractors.items():
            out.features[name][0].append(pred_extractor.end_video())
            out.features[name][1].append(gt_extractor.end_video())
        for name, v in values.items():
            out.frame_values[name].append(v)

        names = pair.pred.frame_names or pair.gt.frame_names
        for position, index in enumerate(indices):
            row = {**labels, "video_id": pair.video_id, "frame_idx": index, "frame_name": names[index] if names else ""}
            if proto.orbit is not None:
                row["view_deg"] = index * proto.orbit.step_deg
            row.update({name: v[position] for name, v in values.items()})
            out.frame_rows.append(row)
        n_clips = len(proto.clips.starts(len(indices)))
        out.video_rows.append({**labels, "video_id": pair.video_id, "n_frames": len(indices), "n_clips": n_clips,
                               **{name: float(v.mean()) for name, v in values.items()}})
        out.video_records.append({"video_id": pair.video_id, "num_frames": pair.num_frames,
                                  "evaluated_frames": len(indices), "clips": n_clips,
                                  "frame_size": list(pair.frame_size),
                                  "pred": {"path": str(pair.pred.path), "sha256": pair.pred.sha256()},
                                  "gt": {"path": str(pair.gt.path), "sha256": pair.gt.sha256()}})
    return out


def _summarise(spec: MetricSpec, measured: _Measurements, proto: Protocol, weights_sha: Mapping[str, str]) -> dict:
    if spec.kind == "frame":
        stats = summarise_frame_metric(measured.frame_values[spec.name], proto.bootstrap)
    else:
        pred_rows, gt_rows = measured.features[spec.name]
        stats = summarise_distribution_metric(pred_rows, gt_rows, proto.bootstrap)
    return {
        "label": spec.label, "generic": spec.generic, "kind": spec.kind, "higher_is_better": spec.higher_is_better,
        "definition": spec.definition, "table_format": spec.table_format, **stats,
        "weights_sha256": {name: weights_sha[name] for name in spec.weights},
    }
