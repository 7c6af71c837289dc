"""Writing evaluation results: CSV, JSON, Markdown and LaTeX, all atomically.

Every file is written to a temporary name in the destination folder and renamed over the
final name (``os.replace``), so a reader never sees a half-written file under the final name.
CSV floats are written with Python's shortest round-tripping representation; JSON keeps
non-finite values as ``NaN`` / ``Infinity`` (Python's ``json`` reads them back).

The tables take the ``summary`` produced by :func:`champ3d.eval.evaluate.evaluate`: one row
per method with each metric's headline value (frame metrics: the frame-pooled mean that the
published tables print; distribution metrics: the pooled Fréchet distance), a row with the
bootstrap intervals, and a footnote naming protocol, profile, split, counts, package
versions and weight hashes.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence


def atomic_write_text(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
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


def _headline(metric: Mapping[str, Any]) -> tuple[float, list[float]]:
    if metric["kind"] == "frame":
        return metric["frame_pooled"]["value"], metric["frame_pooled"]["ci"]
    return metric["value"], metric["ci"]


def _footnote(summary: Mapping[str, Any]) -> list[str]:
    boot = summary["bootstrap"]
    prov = summary["provenance"]
    lines = [
        f"Protocol {summary['protocol']} (split {summary['split']}), profile {summary['profile']}: "
        f"{summary['n_videos']} videos, {summary['n_frames']} frames.",
        "Frame metrics: mean over all frames; FID/FID-VID/FVD: Fréchet distance of pooled features.",
        f"Intervals: {boot['confidence']:.0%} percentile bootstrap over videos "
        f"(frame metrics B={boot['samples']}, distribution metrics B={boot['distribution_samples']}, "
        f"seed {boot['seed']}).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()) + ".",
    ]
    if prov["weights_sha256"]:
        lines.append("Weights sha256: " + ", ".join(f"{k} {v[:12]}" for k, v in prov["weights_sha256"].items()) + ".")
    return lines


def markdown_table(summary: Mapping[str, Any]) -> str:
    metrics = summary["metrics"]
    headers = ["Method"] + [f"{m['label']} {'↑' if m['higher_is_better'] else '↓'}" for m in metrics.values()]
    values = [summary["method"]]
    intervals = [f"{summary['bootstrap']['confidence']:.0%} CI"]
    for m in metrics.values():
        value, ci = _headline(m)
        values.append(format_number(value, m["table_format"]))
        intervals.append(f"[{format_number(ci[0], m['table_format'])}, {format_number(ci[1], m['table_format'])}]")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
             "| " + " | ".join(values) + " |", "| " + " | ".join(intervals) + " |", ""]
    lines += _footnote(summary)
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "–": "--", "∞": r"$\infty$", "é": r"\'e"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def latex_table(summary: Mapping[str, Any]) -> str:
    """A booktabs ``tabular`` followed by the footnote as text lines."""
    metrics = summary["metrics"]
    headers = ["Method"] + [latex_escape(m["label"]) + (r" $\uparrow$" if m["higher_is_better"] else r" $\downarrow$")
                            for m in metrics.values()]
    values = [latex_escape(summary["method"])]
    intervals = [latex_escape(f"{summary['bootstrap']['confidence']:.0%} CI")]
    for m in metrics.values():
        value, ci = _headline(m)
        values.append(latex_escape(format_number(value, m["table_format"])))
        intervals.append(r"\scriptsize[" + latex_escape(format_number(ci[0], m["table_format"])) + ", "
                         + latex_escape(format_number(ci[1], m["table_format"])) + "]")
    lines = [
        r"\begin{tabular}{l" + "c" * len(metrics) + "}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
        " & ".join(values) + r" \\",
        " & ".join(intervals) + r" \\",
        r"\bottomrule",
        r"\end{tabular}",
        "",
    ]
    lines += [latex_escape(line) + r"\\" for line in _footnote(summary)]
    return "\n".join(lines) + "\n"
