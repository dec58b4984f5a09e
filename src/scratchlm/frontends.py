"""Keeping the two front ends in agreement: `scratchlm sync` after DVC has changed the workspace,
and `scratchlm resume` after Snakemake was killed.

A killed Snakemake (SIGKILL, a lost login session under a SLURM run) leaves three things behind:
its jobs run on as orphans; the jobs that finished inside it are not in dvc.lock, because its
`onsuccess` never ran; and its lock and incomplete-output markers stop the next run. `resume`
mends all three: it ends the orphans (their training resumes from its checkpoints), records in
dvc.lock every job that Snakemake itself now finds up to date but DVC does not (a reconciliation,
not a commit per job: a per-job `dvc commit` would cost every job DVC's start-up and contend for
DVC's repository lock with its neighbours, for the rare killed run), unlocks, and runs Snakemake
again with --rerun-incomplete.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from . import dag, paths
from . import params as params_mod
from .atomic import JOB_LOCKS, lock_holder
from .errors import ScratchError


def _run(*cmd: str, check: bool = True, quiet: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *cmd], check=check, text=True, capture_output=quiet, env=env)


def _plan() -> str:
    """A Snakemake dry run as `planned` reads it: the rules' messages, whatever the user's
    SCRATCHLM_JOB_BLOCKS (blocks in their place would read as a plan of nothing, and every job
    DVC calls stale would be recorded as done)."""
    env = {k: v for k, v in os.environ.items() if k != dag.JOB_BLOCKS_ENV}
    plan = _run("snakemake", "-n", "--rerun-incomplete", quiet=True, env=env)
    return plan.stdout + plan.stderr


def record(stages: list[str]) -> None:
    """`dvc commit --force --no-relink` of these stages with dvc.yaml and dvc.lock read once and
    dvc.lock written once. `dvc commit` collects each named stage on its own and so parses both
    files and rewrites the lock once per stage: 6-7 s a stage with this project's lock (every
    stage lists its code), 4 of the demo's 21 minutes for its 38 jobs."""
    from dvc.repo import Repo

    wanted = set(stages)
    with Repo() as repo, repo.lock:
        chosen = [stage for stage in repo.index.stages if stage.addressing in wanted]
        missing = wanted - {stage.addressing for stage in chosen}
        if missing:
            raise ScratchError(f"dvc.yaml has no stage {sorted(missing)[0]!r}; regenerate it with "
                               f"`scratchlm dag --write`")
        for stage in chosen:
            stage.save()
            stage.commit(relink=False)
        # each stage has a dvcfile object of its own; one per file writes that file's lock once
        for path, dvcfile in {stage.dvcfile.path: stage.dvcfile for stage in chosen}.items():
            dvcfile.dump_stages([stage for stage in chosen if stage.dvcfile.path == path], update_pipeline=False)


def settled(raw: dict) -> list[str]:
    """The settings stages whose file already holds what they would write now (dag.settings). DVC
    tracks the sections they read whole, so it calls one stale when a shared value its model pins
    changed, while Snakemake, which tracks what it writes, rightly skips it; recording these after
    a Snakemake run makes DVC agree, as rerunning them would (the same bytes)."""
    found = []
    for job in dag.jobs(raw, "settings"):
        out = paths.path(paths.SETTINGS, **job.wildcards)
        if out.exists() and json.loads(out.read_text(encoding="utf-8")) == dag.settings(raw, job):
            found.append(job.dvc_stage)
    return found


def sync(args) -> None:
    """`scratchlm sync`: after a DVC-side change of the workspace (checkout, pull, exp apply), make
    Snakemake agree: when DVC vouches that every output is up to date, touch them in DAG order so
    their mtimes do too."""
    if _run("dvc", "status", "-q", check=False).returncode != 0:
        raise ScratchError("dvc status: the workspace differs from dvc.lock; run `dvc repro` (or `dvc checkout`) "
                           "first, then `scratchlm sync` (after a killed Snakemake: `scratchlm resume`)")
    _run("snakemake", "--touch", "--forceall", "--cores", "all", "--quiet")
    print("sync: Snakemake now agrees with dvc.lock")


def _descendants(pid: int) -> list[int]:
    """The process and all its children, deepest last (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in os.scandir("/proc"):
        if stat.name.isdigit():
            try:
                with open(f"/proc/{stat.name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(stat.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def end_orphans(grace: float = 10.0) -> list[str]:
    """End the stage processes that still hold their job's lock (a killed run's orphans) with
    their children: SIGTERM, then SIGKILL after `grace` seconds. Returns the jobs ended."""
    ended = []
    for lock in sorted(JOB_LOCKS.glob("*.lock")) if JOB_LOCKS.exists() else []:
        pid = lock_holder(lock)
        if pid is None:
            continue
        tree = _descendants(pid)
        for p in tree:
            with _gone():
                os.kill(p, signal.SIGTERM)
        deadline = time.time() + grace
        while lock_holder(lock) is not None and time.time() < deadline:
            time.sleep(0.2)
        for p in tree:
            with _gone():
                os.kill(p, signal.SIGKILL)
        while lock_holder(lock) is not None:
            time.sleep(0.1)
        ended.append(lock.stem)
    return ended


class _gone:
    """Ignore a process that has already ended."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is ProcessLookupError


def planned(output: str) -> dict[str, str]:
    """DVC names of the jobs a Snakemake dry run plans, each with Snakemake's reason: the rules'
    messages (dag.snakemake_message, `Job N: <message>`, then `Reason: ...` unless the profile's
    `quiet: reason` holds; `-q host` shows them)."""
    found = {}
    for m in re.finditer(r"^Job \d+: (.*)$(?:\nReason: (.*)$)?", output, flags=re.M):
        job = dag.job_of_message(m[1])
        if job is not None:
            found[job.dvc_stage] = m[2] or ""
    return found


def reconcile(params: dict) -> list[str]:
    """Record in dvc.lock the jobs Snakemake finds up to date (it plans no rerun of them) that DVC
    does not: the ones that finished in a run whose bookkeeping never happened."""
    todo = planned(_plan())
    status = json.loads(_run("dvc", "status", "--json", quiet=True).stdout or "{}")
    finished = sorted(j.dvc_stage for j in dag.jobs(params) if j.dvc_stage in status and j.dvc_stage not in todo)
    if finished:
        record(finished)
    return finished


def resume(args) -> None:
    """`scratchlm resume [SNAKEMAKE OPTIONS]`: see the module docstring."""
    params = params_mod.load(args.params)
    ended = end_orphans()
    if ended:
        print(f"resume: ended {len(ended)} job(s) a killed run left running: {', '.join(ended)} "
              f"(training resumes from its checkpoints)", flush=True)
    _run("snakemake", "--unlock", "--quiet", quiet=True)
    recorded = reconcile(params)
    print(f"resume: recorded {len(recorded)} finished job(s) in dvc.lock", flush=True)
    extra = [a for a in args.snakemake_args if a != "--"] or ["--cores", "all"]
    code = _run("snakemake", "--rerun-incomplete", *extra, check=False).returncode
    if code != 0:
        raise ScratchError(f"resume: snakemake ended with exit status {code}; its error is above (the job logs "
                           f"are in logs/)")
