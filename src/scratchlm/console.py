"""One progress line at a time per training job on the console, and any job's warnings, while
Snakemake sends everything a job prints to its log. The rule's command hands the console to the job as a file descriptor
(`SCRATCHLM_CONSOLE_FD=3 ... 3>&2 > {log} 2>&1`); without one (DVC, a stage by hand, where the
job's own output is on the console) nothing is written here."""

from __future__ import annotations

import os
import sys

FD_ENV = "SCRATCHLM_CONSOLE_FD"
EVERY_S = 30.0  # two jobs at a time share the console: a line per job every half minute at most

_job = ""


def start(job: str) -> None:
    """Name the job the lines are about (`finetune ner/gru/full`)."""
    global _job
    _job = job


def say(text: str) -> None:
    fd = os.environ.get(FD_ENV)
    if not fd or os.environ.get("RANK", "0") != "0":  # the main training process speaks for the job
        return
    try:
        os.write(int(fd), f"  {_job}: {text}\n".encode())
    except (OSError, ValueError):  # no such descriptor (a command run by hand with the variable set)
        pass


def warn(text: str) -> None:
    """A warning, one line: in the job's output (its log, or the console of a stage run by hand or
    by DVC) and, under Snakemake, on the console too."""
    print(f"scratchlm: warning: {text}", file=sys.stderr, flush=True)
    fd = os.environ.get(FD_ENV)
    if fd and os.environ.get("RANK", "0") == "0":
        try:
            os.write(int(fd), f"scratchlm: warning: {text}\n".encode())
        except (OSError, ValueError):
            pass


def duration(seconds: float) -> str:
    """1h02m, 3m05s, 42s."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
