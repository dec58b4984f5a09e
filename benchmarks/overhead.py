"""Pipeline overhead: the wall time of a no-op `snakemake --cores all` and of `dvc status` on the
demo DAG, i.e. in the repository root where the demo's results are committed and up to date;
the median of `repeats` runs each.

A no-op is checked first (`snakemake -n` must plan nothing): a working tree with pending jobs
(edited sources, a params change, outputs not reproduced yet) would make the timed command run
them, so then nothing is timed and the reason is reported. The files the commands could write
(dvc.lock, results/) are compared before and after.
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


def measure(root: Path, repeats: int) -> Outcome:
    keys = ("noop_snakemake_s", "noop_dvc_status_s")
    why = _pending(root)
    if why:
        return Outcome(summary=dict.fromkeys(keys), nulls=dict.fromkeys(keys, why), detail={"where": str(root)},
                       rows=[Row(label, "—", "—", None, f"≤ {GOAL_S:g} s", None, key)
                             for label, key in zip(LABELS, keys)])
    before = _state(root)
    snakemake_s, snakemake_runs, snakemake_out = _median(["snakemake", "--cores", "all"], root, repeats)
    dvc_s, dvc_runs, dvc_out = _median(["dvc", "status"], root, repeats)
    detail = {"where": str(root), "repeats": repeats, "snakemake_runs_s": snakemake_runs, "dvc_status_runs_s": dvc_runs,
              "snakemake_was_noop": NOTHING in snakemake_out, "dvc_status_clean": DVC_CLEAN in dvc_out,
              "tree_unchanged": _state(root) == before}
    rows = [Row(LABELS[0], fmt(snakemake_s, " s"), "—", None, f"≤ {GOAL_S:g} s", at_most(snakemake_s, GOAL_S),
                keys[0]),
            Row(LABELS[1], fmt(dvc_s, " s"), "—", None, f"≤ {GOAL_S:g} s", at_most(dvc_s, GOAL_S), keys[1])]
    return Outcome(summary={"noop_snakemake_s": snakemake_s, "noop_dvc_status_s": dvc_s}, rows=rows, detail=detail)
