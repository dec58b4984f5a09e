"""The DAG as data, shared by the Snakefile, `scratchlm sync` and the tests: which fine-tuning
runs params declare, and the DVC stage name of each Snakemake job."""

from __future__ import annotations

import itertools
import subprocess
import sys
from typing import NamedTuple

from .errors import ScratchError

# rule -> the wildcards that make up its DVC foreach/matrix key, in dvc.yaml's order
STAGE_KEYS = {"data": ("dataset",), "tokenizer": (), "tokenize": ("task",), "pack": (), "pretrain": ("model",),
              "report": ()}


class Run(NamedTuple):
    """One fine-tuning run. Its folder name (`full`, `lora`, `full-0.1`) is the `run` wildcard."""
    task: str
    model: str
    method: str
    fraction: float = 1.0

    @property
    def name(self) -> str:
        return self.method if self.fraction == 1.0 else f"{self.method}-{self.fraction:g}"

    @property
    def kind(self) -> str:
        """Which dvc.yaml matrix holds the run: `` (the main one), `_lora` or `_fraction`."""
        return "_lora" if self.method == "lora" else "_fraction" if self.fraction != 1.0 else ""

    @property
    def timing_name(self) -> str:
        """Its results/timing/<stage>/ file name, without .json."""
        return f"{self.task}/{self.model}/{self.name}"

    def args(self) -> str:
        extra = f" --fraction {self.fraction:g}" if self.fraction != 1.0 else ""
        return f"--task {self.task} --model {self.model} --method {self.method}{extra}"

    def dvc_stage(self, stage: str) -> str:
        key = [self.task, self.model] + ([] if self.method == "lora" else [self.method])
        key += [f"{self.fraction:g}"] if self.fraction != 1.0 else []
        return f"{stage}{self.kind}@" + "-".join(key)

    @classmethod
    def parse(cls, task: str, model: str, name: str) -> "Run":
        method, _, fraction = name.partition("-")
        return cls(task, model, method, float(fraction) if fraction else 1.0)


def runs(params: dict) -> list[Run]:
    """Every fine-tuning run that params declare: each model x method, LoRA for the models that
    take it, and the data-efficiency runs."""
    tasks, ft = params["tasks"], params["finetune"]
    out = [Run(*r) for r in itertools.product(tasks, params["pretrain"]["models"], ft["methods"])]
    out += [Run(t, m, "lora") for t, m in itertools.product(tasks, ft["lora"]["models"])]
    eff = ft["data_efficiency"]
    out += [Run(*r) for r in itertools.product(tasks, eff["models"], eff["methods"], eff["fractions"])]
    return out


def dvc_stage(rule: str, wildcards: dict) -> str:
    """DVC's name for a job: `data@sentiment`, `finetune@sentiment-gru-full`,
    `finetune_lora@ner-bert`, `evaluate_fraction@ner-gru-full-0.1`, `report`."""
    if rule in ("finetune", "evaluate"):
        return Run.parse(wildcards["task"], wildcards["model"], wildcards["run"]).dvc_stage(rule)
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
