# Shared set-up: validate params.yaml, refuse overrides, DVC bookkeeping after each run.
import os
import shutil
import sys

from snakemake.common.configfile import load_configfile

sys.path.insert(0, os.path.join(workflow.basedir, "src"))  # works without `pip install -e .` too
from scratchlm import params as scratchlm_params
from scratchlm.errors import ScratchError
from scratchlm.workflow import dvc_stage, runs

# A user error ends the run with one line (sys.exit), as the stage commands do; a WorkflowError
# would add Snakemake's traceback lines.
try:
    P = scratchlm_params.load("params.yaml")
except ScratchError as e:
    sys.exit(f"scratchlm: error: {e}")

# Stage commands read params.yaml, and dvc.lock records params.yaml: an override given only to
# Snakemake would produce outputs that neither describes, so it is refused.
if config != load_configfile("params.yaml"):
    sys.exit(
        "scratchlm: error: --config/--configfile overrides are refused: stage commands read "
        "params.yaml. Edit params.yaml, apply a preset with `scratchlm preset NAME`, or try a "
        "value with `dvc exp run -S key=value`."
    )

# Each job runs `python -m scratchlm` from the interpreter running Snakemake (the venv).
shell.prefix(f'export PATH="{os.path.dirname(sys.executable)}:$PATH"; ')

# Training rules claim a `gpu` unit per training process when a GPU is configured, so
# `--resources gpu=N` caps concurrent GPU jobs; on CPU they claim none.
GPU = P["processes"] if P["device"] == "cuda" or (P["device"] == "auto" and shutil.which("nvidia-smi")) else 0
# Two training jobs at a time, each on half the cores: measured on 2 cores, two 1-thread GRU jobs
# get 17% more steps done than one 2-thread job, and each hides the other's start-up.
TRAIN_THREADS = max(1, workflow.cores // 2)  # torch reads OMP_NUM_THREADS={threads}

wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    model=r"[a-z][a-z0-9_]*",
    task=r"[a-z][a-z0-9_]*",
    run=r"[a-z][a-z0-9_]*(-[0-9.]+)?",


def src(*modules):
    """The package's source files a rule depends on (each stage's own module, plus what it imports)."""
    return [f"src/scratchlm/{m}" for m in ("cli.py", "params.py", "io.py", "timing.py", *modules)]


TRAIN_SRC = ("training.py", "models/__init__.py", "models/recurrent.py")


def dvc_commit(log):
    """Record the outputs of exactly the jobs that ran in dvc.lock (without --no-relink DVC
    would rewrite them, and the new mtimes would make Snakemake rerun)."""
    if workflow.touch or workflow.dryrun:
        return
    stages = sorted({dvc_stage(j.rule.name, dict(j.wildcards)) for j in workflow.dag.finished_jobs
                     if j.rule.name != "all"})
    if stages:
        shell(f"{sys.executable} -m dvc commit --force --no-relink --quiet " + " ".join(stages))


onsuccess:
    dvc_commit(log)


onerror:
    dvc_commit(log)
