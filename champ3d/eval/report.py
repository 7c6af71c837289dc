"""Writing evaluation results: CSV, JSON, Markdown and LaTeX, all atomically.

Every file is written to a temporary name in the destination folder and renamed over the
final name (``os.replace``), so a reader never sees a half-written file under the final name.
CSV floats are written with Python's shortest round-tripping representation; JSON keeps
non-finite values as ``NaN`` / ``Infinity`` (Python's ``json`` reads them back).

The tables take per-method summaries (:func:`champ3d.eval.aggregate.summarise_method`): one
row per method with each metric's headline value (frame metrics: the frame-pooled mean that
the published tables print; video metrics: the mean over videos; distribution metrics: the
pooled Fréchet distance), a row with the bootstrap intervals, and a footnote naming
protocol, profile, split, counts, package versions and weight hashes. A metric that could
not run shows the reason in its cell (``needs i3d_pretrained_400.pt``).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from champ3d.io.atomic import atomic_write_path


def atomic_write_text(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write_path(path, overwrite=True) as temp:
        temp.write_text(text, encoding="utf-8", newline="")
    return path


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row[c] for c in columns})
    return atomic_write_text(path, buffer.getvalue())


def write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def append_jsonl(path: Path, data: Any) -> None:
    """Append one line to a ledger; a single ``write`` of one line in append mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(data, sort_keys=True) + "\n")


def format_number(value: float, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return format(value, spec)


def headline(metric: Mapping[str, Any]) -> tuple[float, list[float]]:
    """(value, interval) a table prints for a metric summary."""
    if metric["kind"] == "frame":
        return metric["frame_pooled"]["value"], metric["frame_pooled"]["ci"]
    return metric["value"], metric["ci"]


def _columns(summaries: Sequence[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, description) of every metric column, in the order of the first method that has it."""
    columns: dict[str, Mapping[str, Any]] = {}
    for summary in summaries:
        described = {**summary.get("unavailable", {}), **summary["metrics"]}
        for name in summary.get("columns", list(summary["metrics"])):
            columns.setdefault(name, described[name])
    return list(columns.items())


def _cells(summary: Mapping[str, Any], name: str) -> tuple[str, str] | None:
    """(value, interval) text of a metric for one method; the reason for an unavailable one."""
    if name in summary.get("unavailable", {}):
        return summary["unavailable"][name]["reason"], ""
    if name not in summary["metrics"]:
        return None
    metric = summary["metrics"][name]
    value, ci = headline(metric)
    spec = metric["table_format"]
    return format_number(value, spec), f"[{format_number(ci[0], spec)}, {format_number(ci[1], spec)}]"


def _footnote(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    first = summaries[0]
    boot = first["bootstrap"]
    counts = "; ".join(f"{s['method']}: {s['n_videos']} videos, {s['n_frames']} frames" for s in summaries)
    lines = [
        f"Protocol {first['protocol']} (split {first['split']}), profile {first['profile']}: {counts}.",
        "Frame metrics: mean over all frames; video metrics: mean over videos; "
        "FID/FID-VID/FVD: Fréchet distance of pooled features.",
        f"Intervals: {boot['confidence']:.0%} percentile bootstrap over videos "
        f"(B={boot['samples']}, distribution metrics B={boot['distribution_samples']}, seed {boot['seed']}).",
    ]
    versions = first["provenance"]["versions"]
    if isinstance(versions, Mapping):
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    else:
        lines.append(f"Versions: {len(versions)} different package sets (see protocol.json).")
    weights: dict[str, str] = {}
    for summary in summaries:
        weights.update(summary["provenance"]["weights_sha256"])
    if weights:
        lines.append("Weights sha256: " + ", ".join(f"{k} {v[:12]}" for k, v in weights.items()) + ".")
    return lines


def _arrow(description: Mapping[str, Any]) -> str:
    return "↑" if description["higher_is_better"] else "↓"


def markdown_table(*summaries: Mapping[str, Any]) -> str:
    """One row per method summary (see :mod:`champ3d.eval.aggregate`) and a row with its
    intervals; a metric that could not run shows what it needs."""
    columns = _columns(summaries)
    confidence = f"{summaries[0]['bootstrap']['confidence']:.0%} CI"
    lines = ["| Method | " + " | ".join(f"{d['label']} {_arrow(d)}" for _, d in columns) + " |",
             "|" + "---|" * (len(columns) + 1)]
    for summary in summaries:
        cells = [_cells(summary, name) or ("–", "") for name, _ in columns]
        lines.append(f"| {summary['method']} | " + " | ".join(c[0] for c in cells) + " |")
        lines.append(f"| {confidence} | " + " | ".join(c[1] for c in cells) + " |")
    lines.append("")
    lines += _footnote(summaries)
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "–": "--", "∞": r"$\infty$", "é": r"\'e", "²": r"$^2$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def _latex_arrow(description: Mapping[str, Any]) -> str:
    return r" $\uparrow$" if description["higher_is_better"] else r" $\downarrow$"


def latex_table(*summaries: Mapping[str, Any]) -> str:
    """A booktabs ``tabular`` (one row per method, then its intervals) followed by the footnote."""
    columns = _columns(summaries)
    confidence = latex_escape(f"{summaries[0]['bootstrap']['confidence']:.0%} CI")
    lines = [
        r"\begin{tabular}{l" + "c" * len(columns) + "}",
        r"\toprule",
        " & ".join(["Method"] + [latex_escape(d["label"]) + _latex_arrow(d) for _, d in columns]) + r" \\",
        r"\midrule",
    ]
    for summary in summaries:
        cells = [_cells(summary, name) or ("–", "") for name, _ in columns]
        lines.append(" & ".join([latex_escape(summary["method"])] + [latex_escape(c[0]) for c in cells]) + r" \\")
        lines.append(" & ".join([confidence] + [r"\scriptsize" + latex_escape(c[1]) if c[1] else "" for c in cells])
                     + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    lines += [latex_escape(line) + r"\\" for line in _footnote(summaries)]
    return "\n".join(lines) + "\n"


def _video_cells(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                 described: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    return [[str(row["method"]), str(row["video_id"]), str(row["n_frames"])]
            + [format_number(row[m], described[m]["table_format"]) for m in metrics] for row in rows]


def per_video_markdown(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                       described: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per method and video: frame metrics' per-video means and video metrics' values."""
    lines = ["| Method | Video | Frames | " + " | ".join(f"{described[m]['label']} {_arrow(described[m])}"
                                                        for m in metrics) + " |",
             "|" + "---|" * (len(metrics) + 3)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _video_cells(rows, metrics, described)]
    return "\n".join(lines) + "\n"


def per_video_latex(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                    described: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [r"\begin{tabular}{llr" + "c" * len(metrics) + "}", r"\toprule",
             " & ".join(["Method", "Video", "Frames"] + [latex_escape(described[m]["label"]) + _latex_arrow(described[m])
                                                         for m in metrics]) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in cells) + r" \\" for cells in _video_cells(rows, metrics, described)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
