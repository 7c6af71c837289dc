"""Aggregating per-video results (:mod:`champ3d.eval.results`) into tables.

:func:`summarise_method` turns the results of one method into its summary: per metric the
headline value with a video-level bootstrap interval (:mod:`champ3d.eval.stats`), counts,
definition and weight hashes; the metrics that could not run appear under ``unavailable``
with the reason (e.g. ``needs i3d_pretrained_400.pt``). :func:`write_tables` writes, for
one or several methods evaluated under the same protocol and profile:

- ``per_frame.csv``: one row per evaluated frame, one column per frame metric;
- ``per_video.csv`` / ``per_video.md`` / ``per_video.tex``: one row per method and video
  (frame metrics: the video's mean; video metrics: its value);
- ``table.md`` / ``table.tex``: one row per method with its bootstrap-interval row;
- ``protocol.json``: the reproducibility record (protocol, profile and metric definitions,
  and per method the videos with their sha256, fits and guidance used, provenance and run
  information).

:func:`write_report` does all this for every result found under a run folder
(``champ3d report``) and adds ``summary.json`` with one summary per method.

Every CSV row carries protocol, profile, split and method. Results that disagree on the
protocol, the profile, a method's metric list or a weights file's hash are refused, naming
both result files and the field; so is a video evaluated twice for one method.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from champ3d.errors import Champ3dInputError
from champ3d.eval.report import (atomic_write_text, latex_table, markdown_table, per_video_latex,
                                 per_video_markdown, write_csv, write_json)
from champ3d.eval.results import VideoResult, find_results
from champ3d.eval.stats import (BootstrapConfig, summarise_distribution_metric, summarise_frame_metric,
                                summarise_video_metric)

LABELS = ("protocol", "profile", "split")


def _first_difference(a: Any, b: Any, prefix: str) -> str | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{prefix}.{key}"
            found = _first_difference(a[key], b[key], f"{prefix}.{key}")
            if found:
                return found
        return None
    return None if a == b else prefix


def _protocol_without_source(result: VideoResult) -> dict:
    return {k: v for k, v in result.protocol.items() if k != "source"}


def check_consistent(results: Sequence[VideoResult]) -> None:
    """Refuse results that cannot share one table (module docstring)."""
    if not results:
        raise Champ3dInputError(None, "no evaluation results to aggregate")
    first = results[0]
    seen: dict[tuple[str, str], VideoResult] = {}
    by_method: dict[str, VideoResult] = {}
    for result in results:
        both = f"{first.path} vs {result.path}"
        field = _first_difference(_protocol_without_source(first), _protocol_without_source(result), "protocol")
        if field:
            raise Champ3dInputError(both, f"results of different protocols cannot share a table (field {field})")
        if result.profile != first.profile:
            raise Champ3dInputError(both, f"results of profiles {first.profile} and {result.profile} cannot share "
                                    "a table (field profile)")
        key = (result.method, result.video_id)
        if key in seen:
            raise Champ3dInputError(f"{seen[key].path} vs {result.path}",
                                    f"video {result.video_id} of method {result.method} evaluated twice")
        seen[key] = result
        reference = by_method.setdefault(result.method, result)
        pair = f"{reference.path} vs {result.path}"
        if reference.metric_order != result.metric_order:
            raise Champ3dInputError(pair, f"method {result.method}: the results list different metrics "
                                    f"(field metrics: {reference.metric_order} vs {result.metric_order})")
        if set(reference.metrics) != set(result.metrics):
            raise Champ3dInputError(pair, f"method {result.method}: different metrics could run "
                                    f"(field unavailable: {sorted(reference.unavailable)} vs {sorted(result.unavailable)})")
        for name, digest in result.provenance["weights_sha256"].items():
            other = reference.provenance["weights_sha256"].get(name, digest)
            if other != digest:
                raise Champ3dInputError(pair, f"method {result.method}: weights file {name} differs between "
                                        f"videos (field weights_sha256.{name})")


def _bootstrap(result: VideoResult) -> BootstrapConfig:
    return BootstrapConfig(**result.protocol["bootstrap"])


def _merged_versions(results: Sequence[VideoResult]) -> dict | list:
    distinct: list[dict] = []
    for result in results:
        if result.provenance["versions"] not in distinct:
            distinct.append(result.provenance["versions"])
    return distinct[0] if len(distinct) == 1 else distinct


def summarise_method(results: Sequence[VideoResult]) -> dict[str, Any]:
    """Summary of one method's per-video results (consistent, see :func:`check_consistent`)."""
    first = results[0]
    config = _bootstrap(first)
    weights_sha: dict[str, str] = {}
    for result in results:
        weights_sha.update(result.provenance["weights_sha256"])
    metrics: dict[str, dict] = {}
    for name, description in first.metrics.items():
        if description["kind"] == "frame":
            stats = summarise_frame_metric([r.frame_values[name] for r in results], config)
        elif description["kind"] == "video":
            stats = summarise_video_metric([r.video_values[name] for r in results], config)
        else:
            stats = summarise_distribution_metric([r.features[name][0] for r in results],
                                                  [r.features[name][1] for r in results], config)
        metrics[name] = {**description, **stats,
                         "weights_sha256": {w: weights_sha[w] for w in description["weights"]}}
    timestamps = sorted(r.provenance["timestamp"] for r in results)
    return {
        "protocol": first.protocol["name"], "profile": first.profile, "split": first.split,
        "method": first.method, "n_videos": len(results),
        "n_frames": int(sum(len(r.frame_indices) for r in results)),
        "columns": first.metric_order,
        "metrics": metrics,
        "unavailable": dict(first.unavailable),
        "bootstrap": dict(first.protocol["bootstrap"]),
        "provenance": {"versions": _merged_versions(results), "weights_sha256": weights_sha,
                       "device": first.provenance["device"], "network_dtype": first.provenance["network_dtype"],
                       "timestamps": [timestamps[0], timestamps[-1]]},
    }


def group_by_method(results: Sequence[VideoResult]) -> dict[str, list[VideoResult]]:
    groups: dict[str, list[VideoResult]] = {}
    for result in sorted(results, key=lambda r: (r.method, r.video_id)):
        groups.setdefault(result.method, []).append(result)
    return groups


def _frame_rows(results: Sequence[VideoResult]) -> list[dict]:
    rows = []
    orbit = results[0].protocol.get("orbit")
    for result in results:
        labels = {"protocol": result.protocol["name"], "profile": result.profile, "split": result.split,
                  "method": result.method, "video_id": result.video_id}
        for position, (index, name) in enumerate(zip(result.frame_indices, result.frame_names)):
            row = {**labels, "frame_idx": index, "frame_name": name}
            if orbit is not None:
                row["view_deg"] = index * orbit["step_deg"]
            row.update({metric: values[position] for metric, values in result.frame_values.items()})
            rows.append(row)
    return rows


def _video_rows(results: Sequence[VideoResult]) -> list[dict]:
    rows = []
    for result in results:
        row = {"protocol": result.protocol["name"], "profile": result.profile, "split": result.split,
               "method": result.method, "video_id": result.video_id, "n_frames": len(result.frame_indices),
               "n_clips": result.n_clips}
        row.update({name: float(values.mean()) for name, values in result.frame_values.items()})
        row.update(result.video_values)
        rows.append(row)
    return rows


def _ordered_union(lists: Sequence[Sequence[str]]) -> list[str]:
    out: list[str] = []
    for names in lists:
        out += [n for n in names if n not in out]
    return out


def write_tables(results: Sequence[VideoResult], out_dir: Path) -> tuple[list[dict], dict[str, Path]]:
    """Check, summarise per method and write the files of the module docstring into ``out_dir``;
    returns the per-method summaries and the written files (``summary.json`` is the caller's)."""
    check_consistent(results)
    groups = group_by_method(results)
    summaries = [summarise_method(group) for group in groups.values()]
    ordered = [r for group in groups.values() for r in group]
    orbit = ordered[0].protocol.get("orbit") is not None
    described = {n: d for r in ordered for n, d in r.metrics.items()}
    order = _ordered_union([r.metric_order for r in ordered])
    frame_metrics = [n for n in order if described.get(n, {}).get("kind") == "frame"]
    per_video_metrics = [n for n in order if described.get(n, {}).get("kind") in ("frame", "video")]
    head = list(LABELS) + ["method", "video_id"]
    frame_columns = head + ["frame_idx", "frame_name"] + (["view_deg"] if orbit else []) + frame_metrics
    video_columns = head + ["n_frames", "n_clips"] + per_video_metrics
    video_rows = _video_rows(ordered)
    for row in video_rows:
        for column in video_columns:
            row.setdefault(column, float("nan"))
    frame_rows = _frame_rows(ordered)
    for row in frame_rows:
        for column in frame_columns:
            row.setdefault(column, float("nan"))
    out_dir = Path(out_dir)
    record = {
        "protocol": ordered[0].protocol,
        "profile": ordered[0].profile,
        "metrics": {n: d for r in ordered for n, d in {**r.metrics, **r.unavailable}.items()},
        "methods": {method: {"videos": [{"video_id": r.video_id, **r.record, "result": str(r.path),
                                         "run_info": r.run_info, "provenance": r.provenance} for r in group]}
                    for method, group in groups.items()},
    }
    files = {
        "per_frame": write_csv(out_dir / "per_frame.csv", frame_columns, frame_rows),
        "per_video": write_csv(out_dir / "per_video.csv", video_columns, video_rows),
        "per_video_md": atomic_write_text(out_dir / "per_video.md",
                                          per_video_markdown(video_rows, per_video_metrics, described)),
        "per_video_tex": atomic_write_text(out_dir / "per_video.tex",
                                           per_video_latex(video_rows, per_video_metrics, described)),
        "protocol": write_json(out_dir / "protocol.json", record),
        "table_md": atomic_write_text(out_dir / "table.md", markdown_table(*summaries)),
        "table_tex": atomic_write_text(out_dir / "table.tex", latex_table(*summaries)),
    }
    return summaries, files


def report_summary(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``summary.json`` of ``champ3d report``: shared labels and one summary per method."""
    first = summaries[0]
    return {**{k: first[k] for k in LABELS}, "bootstrap": first["bootstrap"], "methods": list(summaries)}



def write_report(run_dir: Path, out_dir: Path | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """``champ3d report``: aggregate every per-video result under ``run_dir`` into the tables
    of :func:`write_tables` plus ``summary.json`` (:func:`report_summary`) in ``out_dir``
    (default ``run_dir/report``)."""
    run_dir = Path(run_dir)
    paths = find_results(run_dir)
    if not paths:
        raise Champ3dInputError(run_dir, "no per-video evaluation results (*.eval.json) found under this folder")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    summaries, files = write_tables([VideoResult.load(path) for path in paths], out_dir)
    summary = report_summary(summaries)
    files["summary"] = write_json(out_dir / "summary.json", summary)
    return summary, files
