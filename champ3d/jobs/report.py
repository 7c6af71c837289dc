"""The job report: every case's status, and the metrics aggregated over the evaluated cases.

The finished cases with ground truth are grouped by protocol and profile; each group's
per-video results (``metrics/videos/<case>.eval.json`` of the evaluate results, with the
feature rows of the distribution metrics) are linked into ``report/<protocol>-<profile>/results``
and aggregated there by :func:`champ3d.eval.write_report` (one row per generator; bootstrap
intervals over videos; FID / FID-VID / FVD pooled over all the group's videos; metrics that
could not run listed with the weight files they need). The job output then gets::

    report/<protocol>-<profile>/   champ3d.eval's tables (per_frame.csv, per_video.*, table.*,
                                   summary.json, protocol.json)
    report.json                    the cases (status, generator, seed, stage keys) and each
                                   group's summary
    report.md                      each group's table and per-video table, then the cases
    report.csv                     the per-video rows of every group
    report.tex                     each group's table

Aggregation reads only stored results, so the report is rewritten on every run that finds
the job finished; a lock keeps concurrent shards from writing it at once.
"""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from typing import Mapping

from champ3d.eval.report import atomic_write_text, write_csv, write_json
from champ3d.jobs.cache import StageCache
from champ3d.jobs.spec import CaseSpec, JobSpec

REPORT_DIR = "report"
_STAGE_COLUMNS = ("fit_reference", "fit_driving", "guidance", "generate", "evaluate")


def _result_files(cache: StageCache, case: CaseSpec, plan) -> list[Path]:
    key = next(p.key for p in plan if p.stage.name == "evaluate")
    videos = cache.entry("evaluate", key) / "metrics" / "videos"
    return [path for path in (videos / f"{case.name}.eval.json", videos / f"{case.name}.eval.safetensors")
            if path.exists()]


def _aggregate(folder: Path, cases: list[CaseSpec], plans: Mapping[str, list], cache: StageCache) -> dict:
    from champ3d.eval import write_report

    results = folder / "results"
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    for case in cases:
        for path in _result_files(cache, case, plans[case.name]):
            os.symlink(os.path.relpath(path, results), results / path.name)
    summary, files = write_report(results, folder)
    with open(files["per_video"], encoding="utf-8", newline="") as handle:
        per_video = list(csv.DictReader(handle))
    return {"summary": summary, "per_video": per_video,
            "table_md": files["table_md"].read_text(encoding="utf-8"),
            "per_video_md": files["per_video_md"].read_text(encoding="utf-8"),
            "table_tex": files["table_tex"].read_text(encoding="utf-8")}


def _markdown(job: JobSpec, cases: list[dict], groups: list[dict]) -> str:
    lines = [f"# Job {job.source.name}", ""]
    for group in groups:
        lines += [f"## {group['name']} ({len(group['cases'])} cases; tables in {REPORT_DIR}/{group['name']}/)", "",
                  group["table_md"], group["per_video_md"]]
    lines += ["## Cases", "", "| Case | status | generator | seed | " + " | ".join(_STAGE_COLUMNS) + " |",
              "|---|---|---|---|" + "---|" * len(_STAGE_COLUMNS)]
    for case in cases:
        keys = [case["stages"].get(stage, "–")[:12] for stage in _STAGE_COLUMNS]
        lines.append(f"| {case['name']} | {case['status']} | {case['generator']} | {case['seed']} | "
                     + " | ".join(keys) + " |")
    return "\n".join(lines) + "\n"


def write_job_report(job: JobSpec, statuses: Mapping[str, str], plans: Mapping[str, list],
                     cache: StageCache) -> list[Path]:
    """Write the report (module docstring). ``statuses`` gives every case's status: ``"done"``
    (all its results are in ``cache``) or ``"failed"`` (listed, left out of the metrics)."""
    from champ3d.eval.protocol import load_protocol

    cases = [{"name": c.name, "status": statuses[c.name], "generator": c.generator, "seed": c.seed,
              "evaluated": c.gt is not None and statuses[c.name] == "done",
              "stages": {p.stage.name: p.key for p in plans[c.name]}} for c in job.cases]
    grouped: dict[str, list[CaseSpec]] = {}
    for case in job.cases:
        if case.gt is not None and statuses[case.name] == "done":
            protocol = load_protocol(case.protocol)
            grouped.setdefault(f"{protocol.name}-{case.profile or protocol.profile}", []).append(case)
    out = job.output
    with cache.lock(REPORT_DIR):
        groups = [{"name": name, "cases": [c.name for c in members],
                   **_aggregate(out / REPORT_DIR / name, members, plans, cache)}
                  for name, members in grouped.items()]
        rows, columns = [], []
        for group in groups:
            for row in group["per_video"]:
                rows.append(row)
                columns += [c for c in row if c not in columns]
        for row in rows:
            for column in columns:
                row.setdefault(column, "")
        report = {"job": str(job.source), "output": str(out), "cases": cases,
                  "evaluations": [{"name": g["name"], "cases": g["cases"], "summary": g["summary"]} for g in groups]}
        return [
            write_json(out / "report.json", report),
            atomic_write_text(out / "report.md", _markdown(job, cases, groups)),
            write_csv(out / "report.csv", columns, rows),
            atomic_write_text(out / "report.tex", "\n".join(g["table_tex"] for g in groups)),
        ]
