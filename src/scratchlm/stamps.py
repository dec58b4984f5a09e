"""Params stamps: one small file per job, `.scratchlm/params/<DVC stage name>.json`, holding what
both front ends compare to decide whether the job is stale (dag.tracked: its params as params.yaml
holds them and the schema defaults that can fill them).

Snakemake's own params trigger needs its metadata of the job's last run; an output made any
other way (a stage run by hand, `dvc repro`, a checkout) has none, and Snakemake then reused it
silently after its params changed ("missing provenance"). The stamp is an input of the job's rule
instead: the Snakefile rewrites a stamp whose content changed, and a stage command that succeeds
writes its own dated when it started, before its outputs; so an output older than its stamp was
made with other params, whoever made it — Snakemake reruns it, as DVC does. A failed stage writes
no stamp, as it writes no output."""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import dag
from .atomic import write_text

STAMPS = Path(".scratchlm/params")


def path(job: dag.Job) -> Path:
    return STAMPS / f"{job.dvc_stage}.json"


def write(raw: dict, job: dag.Job, made_at: float | None = None) -> None:
    """The job's stamp, rewritten only when what it holds changed (its time is what Snakemake
    reads); `made_at`: dated when the job started, so that it precedes the outputs the job made."""
    text = json.dumps(dag.tracked(raw, job), sort_keys=True, indent=1, default=str) + "\n"
    stamp = path(job)
    if not stamp.exists() or stamp.read_text(encoding="utf-8") != text:
        write_text(stamp, text)
        if made_at is not None:
            os.utime(stamp, (made_at, made_at))
