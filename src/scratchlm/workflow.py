"""The DAG as data, shared by the Snakefile, `scratchlm sync` and the tests: which runs params
declare, and the DVC stage name of each Snakemake job."""

from __future__ import annotations

import itertools
import subprocess
import sys

from .errors import ScratchError

# rule -> the wildcards that make up its DVC foreach/matrix key, in dvc.yaml's order
STAGE_KEYS = {"data": ("dataset",), "tokenizer": (), "tokenize": ("task",), "pack": (), "pretrain": ("model",),
              "finetune": ("task", "model", "method"), "evaluate": ("task", "model", "method"), "report": ()}


def runs(params: dict) -> list[tuple[str, str, str]]:
    """Every (task, model, method) fine-tuning run that params declare."""
    return list(itertools.product(params["tasks"], params["pretrain"]["models"], params["finetune"]["methods"]))


def dvc_stage(rule: str, wildcards: dict) -> str:
    """DVC's name for a job: `data@sentiment`, `finetune@sentiment-gru-full`, `report`."""
    keys = STAGE_KEYS[rule]
    return rule if not keys else f"{rule}@" + "-".join(str(wildcards[k]) for k in keys)


def sync() -> None:
    """After a DVC-side change of the workspace (checkout, pull, exp apply), make Snakemake agree:
    when DVC vouches that every output is up to date, touch them in DAG order so their mtimes do too."""
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "-q"])
    if status.returncode != 0:
        raise ScratchError("dvc status: the workspace differs from dvc.lock; run `dvc repro` "
                           "(or `dvc checkout`) first, then `scratchlm sync`")
    subprocess.run([sys.executable, "-m", "snakemake", "--touch", "--forceall", "--cores", "all", "--quiet"],
                   check=True)
    print("sync: Snakemake now agrees with dvc.lock")
