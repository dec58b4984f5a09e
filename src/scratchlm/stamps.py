"""Params stamps: one small file per job, `.scratchlm/params/<DVC stage name>.json`, holding what
both front ends compare to decide whether the job is stale (dag.tracked: its params as params.yaml
holds them and the schema defaults that can fill them).

Snakemake's own params trigger needs its metadata of the job's last run; an output made any
other way (a stage run by hand, `dvc repro`, a checkout) has none, and Snakemake then reused it
silently after its params changed ("missing provenance"). The stamp is an input of the job's rule
instead: the Snakefile rewrites a stamp whose content changed, and a stage command that succeeds
writes its own dated when it started, before its outputs; so an output older than its stamp was
made with other params, whoever made it — Snakemake reruns it, as DVC does. A failed stage writes
no stamp, as it writes no output. A stage also removes Snakemake's records of the outputs it
replaces (forget_snakemake_records), which would otherwise vouch for them by the stamp's old
checksum."""

from __future__ import annotations

import json
import os
from base64 import urlsafe_b64encode
from pathlib import Path

from . import dag
from .atomic import write_text

STAMPS = Path(".scratchlm/params")
SNAKEMAKE_RECORDS = Path(".snakemake/metadata")  # Snakemake's record of the job that made each output


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


def forget_snakemake_records(outputs: list[str]) -> None:
    """Remove Snakemake's records of the outputs a job is about to replace. A record holds the
    checksum of the params stamp the output was made with, and Snakemake takes a stamp whose
    content matches it for unchanged whatever its date: after DVC (or a command by hand) had
    rerun the job with other params and the params went back, Snakemake kept outputs made with
    the others. Without a record it goes by the stamp's date, as for any output it did not make;
    a job Snakemake runs gets a new record when it ends (file layout: snakemake.persistence.file)."""
    if not SNAKEMAKE_RECORDS.is_dir():
        return
    longest = os.pathconf(SNAKEMAKE_RECORDS, "PC_NAME_MAX") - 1
    for out in outputs:
        name = urlsafe_b64encode(out.encode()).decode()
        parts = [name[i:i + longest] for i in range(0, len(name), longest)]
        (SNAKEMAKE_RECORDS.joinpath(*["@" + p for p in parts[:-1]], parts[-1])).unlink(missing_ok=True)
