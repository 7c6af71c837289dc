"""``champ3d batch``: run a job file of cases (fit, guidance, generate, evaluate) with a cache.

Every stage result is cached by the content hash of what made it, so a rerun (after a
crash, a kill, or an edit of the job file) computes only what is missing. ``--shard K/N``
runs the cases whose position in the job file is K modulo N; shards can run at once on the
same output folder. The job file format is described in :mod:`champ3d.jobs.spec`, the
output folder in :mod:`champ3d.jobs.runner`. Exit status: 0 when every case of the shard
is done, 1 when some case failed (its run.json holds the error), 2 for a bad job file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "run a job file of reference/driving cases, resumable and shardable"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", type=Path, help="job file (YAML): output, defaults, cases")
    p.add_argument("--shard", default="0/1", metavar="K/N",
                   help="run only the cases whose index in the job file is K modulo N (default 0/1: all)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the shard's stages and whether each is cached; compute nothing")


def run(args: argparse.Namespace) -> int:
    from champ3d.jobs.runner import JobRunner
    from champ3d.jobs.spec import load_job, parse_shard

    runner = JobRunner(load_job(args.job), parse_shard(args.shard))
    if args.dry_run:
        runner.describe(sys.stdout)
        return 0
    statuses = runner.run()
    failed = sorted(name for name, status in statuses.items() if status == "failed")
    print(f"{len(statuses) - len(failed)} case(s) done, {len(failed)} failed"
          + (f": {', '.join(failed)} (see <output>/<case>/run.json)" if failed else ""))
    return 1 if failed else 0
