"""Keeping the two front ends in agreement: `scratchlm sync` after DVC has changed the workspace,
and the dvc.lock bookkeeping the Snakefile does after its jobs."""

from __future__ import annotations

import subprocess
import sys

from .errors import ScratchError


def run(args) -> None:
    """`scratchlm sync`: after a DVC-side change of the workspace (checkout, pull, exp apply), make
    Snakemake agree: when DVC vouches that every output is up to date, touch them in DAG order so
    their mtimes do too."""
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "-q"])
    if status.returncode != 0:
        raise ScratchError("dvc status: the workspace differs from dvc.lock; run `dvc repro` "
                           "(or `dvc checkout`) first, then `scratchlm sync`")
    subprocess.run([sys.executable, "-m", "snakemake", "--touch", "--forceall", "--cores", "all", "--quiet"],
                   check=True)
    print("sync: Snakemake now agrees with dvc.lock")
