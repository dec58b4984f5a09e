"""Pipeline overhead: the wall time of a no-op `snakemake --cores all` and of `dvc status` on the
demo DAG up to date, the median of `repeats` runs each: in the repository root when its demo
results are reproduced, else in the benchmark's own fresh reproduction of the demo (demo.py).

A no-op is checked first (`snakemake -n` must plan nothing): in a working tree with pending jobs
(edited sources, a params change, outputs not reproduced yet) the timed command would run them,
so nothing is timed there; with no place left, the reasons are reported. The files the commands
could write (dvc.lock, results/) are compared before and after.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

from .common import Outcome, Row, at_most, fmt, subprocess_env

GOAL_S = 3.0
NOTHING = "Nothing to be done"
DVC_CLEAN = "up to date"
LABELS = ("no-op `snakemake --cores all` (median)", "`dvc status` (median)")
KEYS = ("noop_snakemake_s", "noop_dvc_status_s")


def _run(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True)
    return time.perf_counter() - start, proc


def _pending(root: Path) -> str | None:
    """Why a real `snakemake --cores all` here would not be a no-op; None when it would be."""
    _, proc = _run(["snakemake", "--cores", "all", "-n"], root)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return f"`snakemake -n` failed in {root}: {last[0]}"
    if NOTHING not in proc.stdout + proc.stderr:
        return f"`snakemake -n` plans jobs in {root}: run `make reproduce` (and commit) first"
    return None


def _state(root: Path) -> str:
    """What the timed commands must leave alone: git's view of dvc.lock and results/, and
    dvc.lock's modification time."""
    proc = subprocess.run(["git", "status", "--porcelain", "--", "dvc.lock", "results"], cwd=root,
                          capture_output=True, text=True)
    lock = root / "dvc.lock"
    return proc.stdout + (str(lock.stat().st_mtime_ns) if lock.exists() else "")


def _median(cmd: list[str], root: Path, repeats: int) -> tuple[float, list[float], str]:
    """Median seconds, every run's seconds, and the last run's output."""
    times, output = [], ""
    for _ in range(repeats):
        seconds, proc = _run(cmd, root)
        times.append(round(seconds, 3))
        output = proc.stdout + proc.stderr
    return round(statistics.median(times), 3), times, output


def _timed(root: Path, repeats: int, where: str) -> Outcome:
    before = _state(root)
    snakemake_s, snakemake_runs, snakemake_out = _median(["snakemake", "--cores", "all"], root, repeats)
    dvc_s, dvc_runs, dvc_out = _median(["dvc", "status"], root, repeats)
    detail = {"where": str(root), "repeats": repeats, "snakemake_runs_s": snakemake_runs, "dvc_status_runs_s": dvc_runs,
              "snakemake_was_noop": NOTHING in snakemake_out, "dvc_status_clean": DVC_CLEAN in dvc_out,
              "tree_unchanged": _state(root) == before}
    rows = [Row(f"{LABELS[0]}, {where}", fmt(snakemake_s, " s"), "—", None, f"≤ {GOAL_S:g} s",
                at_most(snakemake_s, GOAL_S), KEYS[0]),
            Row(f"{LABELS[1]}, {where}", fmt(dvc_s, " s"), "—", None, f"≤ {GOAL_S:g} s", at_most(dvc_s, GOAL_S),
                KEYS[1])]
    return Outcome(summary=dict(zip(KEYS, (snakemake_s, dvc_s))), rows=rows, detail=detail)


def measure(places: dict[str, Path], repeats: int) -> Outcome:
    """Timed in the first of `places` ({description: folder}) where nothing would run."""
    reasons = []
    for where, root in places.items():
        why = _pending(root)
        if why is None:
            return _timed(root, repeats, where)
        reasons.append(why)
    return Outcome(summary=dict.fromkeys(KEYS), nulls=dict.fromkeys(KEYS, "; ".join(reasons)),
                   detail={"where": None}, rows=[Row(label, "—", "—", None, f"≤ {GOAL_S:g} s", None, key)
                                                 for label, key in zip(LABELS, KEYS)])
