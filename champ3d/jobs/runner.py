"""Running a job: every case's stages through the cache, a run record per case, the job report.

Output folder (``output`` of the job file)::

    .cache/<stage>/<key>/        stage results (champ3d.jobs.cache), shared by all cases
    .cache/files/                remembered input hashes (champ3d.jobs.hashing)
    <case>/run.json              the case's run record (below)
    <case>/stages.jsonl          one line per stage per run: computed or cached, by which run
    <case>/guidance              links to the case's results in the cache
    <case>/video.mp4
    <case>/metrics               (cases with ground truth)
    report.{json,md,csv,tex}     the job report (champ3d.jobs.report), once every case is done
    report/<protocol>-<profile>/ the aggregated evaluation tables behind it

The cache keeps results of earlier versions of the job file too (to reuse them if an edit
is undone), so ``champ3d report`` is pointed at ``report/<protocol>-<profile>/results``,
which links the current cases' per-video results, never at the whole output folder.

``run.json`` holds the case's settings, seed, input files with their sha256, package
versions, the run (id, host, pid, shard, torch threads, start and end) and per stage its
key, whether it was computed or taken from the cache in this run, the seconds this run
spent on it and the seconds its computation took. A case that fails (bad input, no person found) gets a record
with the error and the job goes on with the other cases.

Sharding: shard K of N (``--shard K/N``) runs the cases whose position in the job file,
counting from 0, is K modulo N. Shards may run at once on one output folder: a stage
result another process is computing is waited for (the case is first put back in the
queue while other cases can progress), never computed twice. Every process writes the
report when it finds all cases finished, so the last shard to finish writes it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import secrets
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TextIO

import torch
from tqdm import tqdm

from champ3d.errors import Champ3dInputError
from champ3d.io.atomic import atomic_write_path
from champ3d.jobs.cache import EntryBusy, Outcome, StageCache
from champ3d.jobs.generators import VIDEO
from champ3d.jobs.hashing import ContentHasher, settings_hash
from champ3d.jobs.spec import CaseSpec, JobSpec
from champ3d.jobs.stages import Stage, StageContext, case_stages, environment

CACHE_DIR = ".cache"
RUN_RECORD = "run.json"
STAGE_LOG = "stages.jsonl"
# Case-folder links: name -> (stage, path inside the stage's result).
CASE_LINKS = {"guidance": ("guidance", "guidance"), VIDEO: ("generate", VIDEO), "metrics": ("evaluate", "metrics")}


@dataclass(frozen=True)
class PlannedStage:
    stage: Stage
    key: str
    record: dict  # what went into the key: version, settings, inputs (path + sha256), upstream keys


def plan_case(case: CaseSpec, hasher: ContentHasher, env: dict) -> list[PlannedStage]:
    """Every stage of ``case`` with its cache key."""
    planned, keys = [], {}
    for stage in case_stages(case):
        inputs = {name: {"path": str(path), "sha256": hasher(path)} for name, path in stage.inputs(case).items()}
        record = {"version": stage.version, "settings": stage.settings(case), "inputs": inputs,
                  "upstream": {name: keys[name] for name in stage.upstream}}
        material = {"stage": stage.name, "environment": env, **record,
                    "inputs": {name: value["sha256"] for name, value in inputs.items()}}
        keys[stage.name] = settings_hash(material)
        planned.append(PlannedStage(stage, keys[stage.name], record))
    return planned


def shard_cases(job: JobSpec, shard: tuple[int, int]) -> list[CaseSpec]:
    index, count = shard
    return [case for case in job.cases if case.index % count == index]


class JobRunner:
    def __init__(self, job: JobSpec, shard: tuple[int, int] = (0, 1), log: TextIO = sys.stderr):
        self.job = job
        self.shard = shard
        self.log = log
        self.run_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.cache = StageCache(job.output / CACHE_DIR, self.run_id)
        self.hasher = ContentHasher(job.output / CACHE_DIR / "files")
        self.env = environment()
        self.context = StageContext()
        self._plans: dict[str, list[PlannedStage]] = {}

    def plan(self, case: CaseSpec) -> list[PlannedStage]:
        if case.name not in self._plans:
            self._plans[case.name] = plan_case(case, self.hasher, self.env)
        return self._plans[case.name]

    def is_done(self, case: CaseSpec) -> bool:
        return all(self.cache.is_complete(p.stage.name, p.key) for p in self.plan(case))

    # -- dry run ----------------------------------------------------------------------------
    def describe(self, out: TextIO) -> None:
        cases = shard_cases(self.job, self.shard)
        print(f"job {self.job.source}: {len(cases)} of {len(self.job.cases)} cases in shard "
              f"{self.shard[0]}/{self.shard[1]}, output {self.job.output}", file=out)
        todo = set()
        for case in cases:
            print(f"  {case.name}", file=out)
            for planned in self.plan(case):
                done = self.cache.is_complete(planned.stage.name, planned.key)
                if not done:
                    todo.add((planned.stage.name, planned.key))
                state = "cached" if done else "to compute"
                print(f"    {planned.stage.name:<14} {planned.key[:12]}  {state}", file=out)
        print(f"{len(todo)} stage result(s) to compute (results shared by several cases counted once)", file=out)

    # -- run --------------------------------------------------------------------------------
    def run(self) -> dict[str, str]:
        """Run the shard's cases; returns {case name: "done" | "failed"}, then writes the report
        if every case of the job is done."""
        cases = shard_cases(self.job, self.shard)
        statuses: dict[str, str] = {}
        counted: dict[str, int] = {}
        total = sum(len(self.plan(case)) for case in cases)
        queue, stalled = deque(cases), 0
        with tqdm(total=total, desc="job", unit="stage", file=self.log, dynamic_ncols=True) as bar:
            while queue:
                case = queue.popleft()
                try:
                    statuses[case.name] = self._run_case(case, bar, counted, wait=stalled >= len(queue) + 1)
                    stalled = 0
                except EntryBusy:
                    queue.append(case)
                    stalled += 1
        self._write_report_if_complete()
        return statuses

    def _run_case(self, case: CaseSpec, bar: tqdm, counted: dict[str, int], wait: bool) -> str:
        started = time.time()
        stages: dict[str, dict] = {}
        outcomes: dict[str, Outcome] = {}
        error = None
        for position, planned in enumerate(self.plan(case)):
            name = planned.stage.name
            bar.set_postfix_str(f"{case.name}: {name}")
            upstream = {u: outcomes[u].path for u in planned.stage.upstream}
            build = lambda folder, planned=planned, upstream=upstream: planned.stage.run(
                self.context, case, upstream, folder)
            try:
                outcome = self.cache.get_or_compute(name, planned.key, build, planned.record, wait=wait,
                                                    on_wait=lambda text: tqdm.write(f"{case.name}: {text}",
                                                                                    file=self.log))
            except EntryBusy:
                raise
            except Exception as exc:  # one case's failure must not stop the job
                error = {"stage": name, "type": type(exc).__name__, "message": str(exc)}
                if not isinstance(exc, Champ3dInputError):
                    error["traceback"] = traceback.format_exc()
                tqdm.write(f"{case.name}: {name} failed: {exc}", file=self.log)
                break
            outcomes[name] = outcome
            stages[name] = self._stage_record(planned, outcome)
            self._log_stage(case, stages[name] | {"stage": name})
            if counted.get(case.name, 0) <= position:
                counted[case.name] = position + 1
                bar.update(1)
            tqdm.write(f"{case.name}: {name} {outcome.status} ({outcome.seconds:.1f} s)", file=self.log)
        status = "failed" if error else "done"
        self._link_results(case, outcomes)
        self._write_record(case, status, stages, error, started)
        return status

    def _stage_record(self, planned: PlannedStage, outcome: Outcome) -> dict:
        computed = outcome.manifest["computed_by"]
        return {"key": planned.key, "status": outcome.status, "seconds": round(outcome.seconds, 3),
                "compute_seconds": round(computed["seconds"], 3), "computed_by_run": computed["run"],
                "result": outcome.manifest["result"]}

    def _log_stage(self, case: CaseSpec, line: dict) -> None:
        folder = self.job.output / case.name
        folder.mkdir(parents=True, exist_ok=True)
        entry = {"run": self.run_id, "time": time.time(), **{k: line[k] for k in ("stage", "key", "status", "seconds")}}
        with open(folder / STAGE_LOG, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _link_results(self, case: CaseSpec, outcomes: dict[str, Outcome]) -> None:
        folder = self.job.output / case.name
        folder.mkdir(parents=True, exist_ok=True)
        for link_name, (stage, inside) in CASE_LINKS.items():
            link = folder / link_name
            if stage not in outcomes:  # failed, or no such stage: no link to an older result
                if link.is_symlink():
                    link.unlink()
                continue
            temp = folder / f".{link_name}.{self.run_id}.link"
            os.symlink(os.path.relpath(outcomes[stage].path / inside, folder), temp)
            os.replace(temp, link)

    def _write_record(self, case: CaseSpec, status: str, stages: dict, error: Optional[dict],
                      started: float) -> None:
        inputs = {}
        for planned in self.plan(case):
            inputs.update({name: value for name, value in planned.record["inputs"].items()
                           if not name.startswith("weights/")})
        plain = lambda v: str(v) if isinstance(v, Path) else [plain(x) for x in v] if isinstance(v, tuple) else v
        settings = {k: plain(v) for k, v in dataclasses.asdict(case).items()}
        record = {
            "case": case.name, "status": status, "job": str(self.job.source),
            "settings": settings, "seed": case.seed, "inputs": inputs,
            "versions": {"python": platform.python_version(), **self.env},
            "run": {"id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(),
                    "shard": f"{self.shard[0]}/{self.shard[1]}", "torch_threads": torch.get_num_threads(),
                    "started": started, "finished": time.time()},
            "stages": stages,
        }
        if error:
            record["error"] = error
        path = self.job.output / case.name / RUN_RECORD
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write_path(path, overwrite=True) as temp:
            temp.write_text(json.dumps(record, indent=2), encoding="utf-8")

    def _write_report_if_complete(self) -> None:
        from champ3d.jobs.report import write_job_report

        statuses = {case.name: self._settled_status(case) for case in self.job.cases}
        pending = [name for name, status in statuses.items() if status is None]
        if pending:
            tqdm.write(f"report not written yet: {len(pending)} case(s) not finished ({', '.join(pending[:5])}"
                       f"{', ...' if len(pending) > 5 else ''})", file=self.log)
            return
        paths = write_job_report(self.job, statuses, {case.name: self.plan(case) for case in self.job.cases},
                                 self.cache)
        tqdm.write(f"report written: {', '.join(str(p) for p in paths)}", file=self.log)

    def _settled_status(self, case: CaseSpec) -> Optional[str]:
        """"done" when all the case's results are in the cache, "failed" when its latest run
        record says so, else None (still to run, or running in another process)."""
        if self.is_done(case):
            return "done"
        try:
            record = json.loads((self.job.output / case.name / RUN_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return "failed" if record.get("status") == "failed" else None
