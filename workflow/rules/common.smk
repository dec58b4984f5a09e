# Shared set-up: validate params.yaml, refuse overrides, read the stage table, and the dvc.lock
# bookkeeping after each run. Every rule takes its inputs, outputs, params and command from the
# table in src/scratchlm/dag.py, the one dvc.yaml is generated from.
import os
import shutil
import sys

from snakemake.common.configfile import load_configfile

sys.path.insert(0, os.path.join(workflow.basedir, "src"))  # works without `pip install -e .` too
from scratchlm import checks, dag, frontends, paths, stamps
from scratchlm import params as scratchlm_params
from scratchlm.errors import ScratchError

# A user error ends the run with one line (sys.exit), as the stage commands do; a WorkflowError
# would add Snakemake's traceback lines.
try:
    P = scratchlm_params.load("params.yaml")
    RAW = scratchlm_params.read_yaml("params.yaml")  # what DVC compares: the file's values, defaults apart
    scratchlm_params.check_local_files(P)
except ScratchError as e:
    sys.exit(f"scratchlm: error: {e}")
for line in checks.warnings(P):  # allowed, but probably not meant: said once, before the first job
    print(f"scratchlm: warning: params.yaml: {line}", file=sys.stderr)

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
# Two training jobs of a stage at a time, each on half the cores (see docs/design.md); a stage
# with one job (one model to pretrain) gets them all. torch reads OMP_NUM_THREADS={threads}.
def training_threads(stage):
    return max(1, workflow.cores // min(2, max(1, len(dag.jobs(P, stage)))))

wildcard_constraints:
    dataset=r"[a-z][a-z0-9_]*",
    model=r"[a-z][a-z0-9_]*",
    seed=r"[0-9]+",
    task=r"[a-z][a-z0-9_]*",
    run=r"[a-z][a-z0-9_]*(-general)?(-[0-9.]+)?(-[0-9]+shot)?",


# Each job's line on the console is its rule's message (dag.snakemake_message); with
# SCRATCHLM_JOB_BLOCKS=1, Snakemake's own block of every input and output instead.
def message(stage):
    return None if os.environ.get(dag.JOB_BLOCKS_ENV) == "1" else dag.snakemake_message(stage)


def job(stage, wildcards):
    return dag.Job(stage, dict(wildcards))


# Each job's params stamp (scratchlm.stamps), rewritten where its params changed: an input of its
# rule, so an output made before the change reruns however it was made (by hand, by DVC).
for _job in dag.jobs(P):
    stamps.write(RAW, _job)


def stamp(stage):
    return lambda w: str(stamps.path(job(stage, w)))


def code(stage):
    """The package files a job's command runs (the import graph, and the job's own: a dataset's source)."""
    return lambda w: dag.code(P, job(stage, w))


def inputs(stage):
    return lambda w: dag.inputs(P, job(stage, w))


# `snakemake --report`: the captions of the outputs the table puts in a report category
CAPTIONS = {"Report": "../report/report.rst", "Figures": "../report/figures.rst"}


def outputs(stage):
    found = []
    for out in dag.STAGES[stage].all_outs:
        path = dag.fill(out.template, P)
        path = directory(path) if out.directory else path
        if out.report:
            extra = {"patterns": ["{name}.png"]} if out.directory else {}
            path = report(path, caption=CAPTIONS[out.report], category=out.report, **extra)
        found.append(path)
    return found


def threads(stage):
    return training_threads(stage) if dag.STAGES[stage].training else 1


def gpu(stage):
    return GPU if dag.STAGES[stage].training else 0


def reads(stage):
    """What DVC compares for a job, the params it reads and the schema defaults that can fill them:
    Snakemake reruns it when one changes, so both front ends find the same jobs stale."""
    return lambda w: dag.tracked(RAW, job(stage, w))


def dvc_commit(log):
    """Record the outputs of exactly the jobs that ran in dvc.lock (without --no-relink DVC
    would rewrite them, and the new mtimes would make Snakemake rerun), and the settings stages
    whose files hold what they would write (frontends.settled)."""
    if workflow.touch or workflow.dryrun:
        return
    stages = sorted({job(j.rule.name, j.wildcards).dvc_stage for j in workflow.dag.finished_jobs
                     if j.rule.name != "all"} | set(frontends.settled(RAW)))
    if stages:
        frontends.record(stages)


onsuccess:
    dvc_commit(log)


onerror:
    dvc_commit(log)
