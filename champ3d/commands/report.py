"""``champ3d report``: aggregate the per-video evaluation results under a run folder.

Finds every ``*.eval.json`` written by ``champ3d eval`` (or the job runner's evaluations)
below ``RUN_DIR`` and writes per-frame, per-video and aggregate tables with bootstrap
intervals (CSV, JSON, Markdown, LaTeX) and the reproducibility record into ``--out``
(default ``RUN_DIR/report``); one table row per method. Results of different protocols or
profiles are refused.
"""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "aggregate per-video evaluation results into tables with bootstrap intervals"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="folder searched (recursively) for *.eval.json results")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/report)")


def run(args: argparse.Namespace) -> int:
    from champ3d.eval import write_report

    _, files = write_report(args.run_dir, args.out)
    print(files["table_md"].read_text(encoding="utf-8"))
    print(f"report written to {files['summary'].parent}")
    return 0
