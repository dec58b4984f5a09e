"""scratchlm: run a pipeline stage, or check params, apply a preset, sync, compare, print the DAG.

`scratchlm <stage>` / `python -m scratchlm <stage>`: one subcommand per pipeline stage (from the
table in dag.py), plus `check`, `preset`, `sync`, `compare` and `dag`. Each stage validates
params.yaml before any work; a user-facing failure prints one line and exits 1.

A command's module is imported by name when it runs (`scratchlm.stages.<stage>`, or the tool's),
so that each stage's code dependencies are its own module's imports and this file's."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import subprocess
import sys
import time

from . import console, dag, declared, gpus, schema, stamps, timing
from . import params as params_mod
from .atomic import job_lock, write_text
from .errors import ScratchError

# tool command -> (module, its function taking the parsed args, help)
TOOLS = {
    "check": ("preflight", "run", "Check params.yaml, its files, the device and the datasets' first rows: all that "
              "needs no training"),
    "preset": ("presets", "run", "Merge workflow/presets/<name>.yaml into params.yaml (both front ends see it)"),
    "sync": ("frontends", "sync", "After dvc checkout/pull/exp apply: make Snakemake agree with dvc.lock"),
    "resume": ("frontends", "resume", "After a killed Snakemake: end its orphaned jobs, record the finished ones "
               "in dvc.lock, and run Snakemake again"),
    "compare": ("compare", "run", "Main test metrics across git revisions and their DVC experiments"),
}
TOKENIZING_STAGES = ("tokenizer", "encode", "pack")
# wildcards a stage command may leave out where params give them one value
OPTIONAL_WILDCARDS = {"seed": "the LM's pretraining seed, one of pretrain.seeds (default: the only one)"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratchlm", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in dag.STAGES.values():
        p = sub.add_parser(stage.name, help=stage.help)
        for wildcard in stage.wildcards:
            if wildcard in OPTIONAL_WILDCARDS:
                p.add_argument(f"--{wildcard}", help=OPTIONAL_WILDCARDS[wildcard])
            else:
                p.add_argument(f"--{wildcard}", required=True)
    sub.add_parser("check", help=TOOLS["check"][2])
    p = sub.add_parser("dag", help="Print dvc.yaml as generated from the stage table (--write: write it and the "
                       "schema's defaults file; --explain STAGE: what a stage reads and writes)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true")
    group.add_argument("--explain", metavar="STAGE", choices=list(dag.STAGES))
    p = sub.add_parser("preset", help=TOOLS["preset"][2])
    p.add_argument("name")
    p.add_argument("--keep-data", action="store_true", help="keep your own datasets and tasks: skip the preset's "
                   "data and tasks sections and sample each hub or local dataset to a few hundred rows instead")
    sub.add_parser("sync", help=TOOLS["sync"][2])
    # Snakemake's options for the rerun (default: --cores all) are whatever else follows (see `run`):
    # argparse's REMAINDER would refuse them, as they start with a dash
    sub.add_parser("resume", help=TOOLS["resume"][2], usage="scratchlm resume [SNAKEMAKE OPTIONS]")
    p = sub.add_parser("compare", help=TOOLS["compare"][2])
    p.add_argument("revs", nargs="*", metavar="REV", help="git revisions (default HEAD); their experiments come along")
    p.add_argument("--format", choices=["markdown", "csv"], default="markdown")
    return parser


def _job(params: dict, args: argparse.Namespace) -> dag.Job:
    """The job the options name, which must be one that params declare, so that its outputs are
    ones both front ends know."""
    stage = dag.STAGES[args.command]
    chosen = {}
    for wildcard in stage.wildcards:
        value = getattr(args, wildcard)
        if wildcard == "run":
            task, model = chosen["task"], chosen["model"]
            declared = [r.name for r in dag.runs(params) if (r.task, r.model) == (task, model)]
            if value not in declared:
                raise ScratchError(f"{args.params}: no fine-tuning run {value!r} of {model} on {task} is declared "
                                   f"(declared: {', '.join(declared)}); see finetune.methods, finetune.lora and "
                                   f"finetune.data_efficiency")
        else:
            key = dag.COLLECTIONS[wildcard]
            declared = dag.names_of(params, wildcard)
            if value is None and len(declared) == 1:
                value = declared[0]
            elif value is None:
                raise ScratchError(f"{args.params}: {key} lists {len(declared)}: name one with --{wildcard} "
                                   f"(declared: {', '.join(declared)})")
            if value not in declared:
                raise ScratchError(f"{args.params}: {key} has no {value!r} (declared: {', '.join(declared)})"
                                   + params_mod.did_you_mean(value, declared))
        chosen[wildcard] = value
    return dag.Job(stage.name, chosen)


def _launch(processes: int, argv: list[str]) -> None:
    """Run this same command as `processes` DDP workers under torchrun (the workers find
    LOCAL_RANK set and train; Trainer shards the batches and averages the gradients)."""
    # after `--`, torchrun's parser leaves the command alone (else it reads `--run` as an ambiguous
    # abbreviation of its --run-path) and hands it to the workers without the `--`
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           "-m", "scratchlm", "--", *argv]
    code = subprocess.run(cmd).returncode
    if code != 0:
        raise ScratchError(f"{argv[0]}: {processes} training processes (torchrun) ended with exit status {code}; "
                           f"the workers' error is above, or set processes: 1")


def _run_stage(params: dict, args: argparse.Namespace, argv: list[str]) -> None:
    job = _job(params, args)
    if "LOCAL_RANK" in os.environ:  # a DDP worker: the launcher holds the job's lock and its GPUs
        _stage_body(params, job, argv)
        return _leave_process_group()
    on_gpus = dag.STAGES[job.stage].training and params["device"] != "cpu"
    with job_lock(job.dvc_stage), gpus.claimed(params["processes"]) if on_gpus else contextlib.nullcontext():
        began = time.time()
        stamps.forget_snakemake_records(job.outputs(params))
        _stage_body(params, job, argv)
        stamps.write(params_mod.read_yaml(args.params), job, made_at=began)  # dated before the outputs it made


def _leave_process_group() -> None:
    """A worker that finished waits for the others, then closes the group. Rank 0 writes the
    outputs after training while the others have nothing left to do; a worker that exited then,
    with the group still open, could end abnormally, and torchrun then stops rank 0 mid-write."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _stage_body(params: dict, job: dag.Job, argv: list[str]) -> None:
    stage = importlib.import_module(f"{__package__}.stages.{job.stage}")
    if dag.STAGES[job.stage].training and params["processes"] > 1 and "LOCAL_RANK" not in os.environ:
        return _launch(params["processes"], argv)
    own = declared.for_job(params, job)  # the stage sees the keys the table declares for it, no other
    console.start(f"{job.stage} {job.name}" if job.name else job.stage)
    if not dag.STAGES[job.stage].timed:
        return stage.run(own, **job.wildcards)
    with timing.recorded(job.stage, job.name) as figures:
        figures.update(stage.run(own, **job.wildcards) or {})


def run(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "resume":
        args.snakemake_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # the fast tokenizer's batches on every core where a stage only tokenizes (measured: 62% of
    # raw encode_batch throughput on one core, about 90% on all); off where a DataLoader may fork
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if args.command in TOKENIZING_STAGES else "false")
    if args.command == "dag":
        return _dag(args)
    if args.command in TOOLS:
        module, function, _ = TOOLS[args.command]
        return getattr(importlib.import_module(f"{__package__}.{module}"), function)(args)
    _run_stage(params_mod.load(args.params), args, argv)


def _dag(args: argparse.Namespace) -> None:
    if args.explain:
        explain = importlib.import_module(f"{__package__}.explain")  # by name, as the tools: no stage runs it
        print(explain.stage(args.explain, params_mod.load(args.params)), end="")
        return
    text = dag.dvc_yaml()
    if not args.write:
        print(text, end="")
        return
    write_text(schema.DEFAULTS_FILE, schema.defaults_text())
    write_text("dvc.yaml", text)
    print(f"dag: wrote dvc.yaml from the stage table and {dag.DEFAULTS} from the params schema")


def _close_progress_bars() -> None:
    """A stage stopped mid-way leaves its progress bar open, with no newline: close it, so the
    error starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:
        for bar in list(tqdm.tqdm._instances):
            bar.close()


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        run(argv)
    except ScratchError as e:
        _close_progress_bars()
        print(f"scratchlm: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("scratchlm: interrupted", file=sys.stderr)
        return 130
    return 0
