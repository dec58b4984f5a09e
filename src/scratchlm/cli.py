"""`scratchlm <stage>` / `python -m scratchlm <stage>`: one subcommand per pipeline stage, plus
`check`, `preset`, `sync` and `compare`. Each stage validates params.yaml before any work; a user-facing
failure prints one line and exits 1."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import ScratchError

# subcommand (= module) -> (help, option -> the params keys whose names it must match)
STAGES = {
    "data": ("Get a dataset into data/raw/<name>", {"dataset": ("data", "datasets")}),
    "tokenizer": ("Train the tokenizer into models/tokenizer", {}),
    "tokenize": ("Tokenize a task's dataset into data/tokenized/<task>", {"task": ("tasks",)}),
    "pack": ("Cut the pretraining corpus into LM blocks in data/blocks/<corpus>", {}),
    "pretrain": ("Pretrain a language model into models/pretrain/<model>", {"model": ("pretrain", "models")}),
    "finetune": ("Fine-tune <model> on <task> with <method> (on a --fraction of the labels)",
                 {"task": ("tasks",), "model": ("pretrain", "models")}),
    "evaluate": ("Score a fine-tuned run on the test split",
                 {"task": ("tasks",), "model": ("pretrain", "models")}),
    "report": ("Write results/report.md", {}),
}
RUN_STAGES = ("finetune", "evaluate")  # these also take --method and --fraction
TRAINING_STAGES = ("pretrain", "finetune")  # these run as `processes` torchrun workers
TOKENIZING_STAGES = ("tokenizer", "tokenize", "pack")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratchlm", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, options) in STAGES.items():
        p = sub.add_parser(name, help=help_text)
        for option in options:
            p.add_argument(f"--{option}", required=True)
        if name in RUN_STAGES:
            p.add_argument("--method", required=True)
            p.add_argument("--fraction", type=float, default=1.0, help="share of the training labels (default 1)")
    sub.add_parser("check", help="Validate params.yaml and exit")
    p = sub.add_parser("preset", help="Merge workflow/presets/<name>.yaml into params.yaml (both front ends see it)")
    p.add_argument("name")
    sub.add_parser("sync", help="After dvc checkout/pull/exp apply: make Snakemake agree with dvc.lock")
    p = sub.add_parser("compare", help="Main test metrics across git revisions and their DVC experiments")
    p.add_argument("revs", nargs="*", metavar="REV", help="git revisions (default HEAD); their experiments come along")
    p.add_argument("--format", choices=["markdown", "csv"], default="markdown")
    return parser


def _check_names(params: dict, options: dict, args: argparse.Namespace) -> dict:
    chosen = {}
    for option, keys in options.items():
        value, declared = getattr(args, option), params
        for key in keys:
            declared = declared[key]
        if value not in declared:
            from .params import did_you_mean

            raise ScratchError(f"{args.params}: {'.'.join(keys)} has no {value!r} (declared: {', '.join(declared)})"
                               + did_you_mean(value, list(declared)))
        chosen[option] = value
    return chosen


def _check_run(params: dict, args: argparse.Namespace) -> dict:
    """A fine-tuning run must be one that params declare (workflow.runs), so that its outputs are
    ones both front ends know."""
    from .workflow import Run, runs

    run = Run(args.task, args.model, args.method, args.fraction)
    declared = [r for r in runs(params) if (r.task, r.model) == (run.task, run.model)]
    if run not in declared:
        raise ScratchError(f"{args.params}: no fine-tuning run {run.name!r} of {run.model} on {run.task} is declared "
                           f"(declared: {', '.join(r.name for r in declared)}); see finetune.methods, "
                           f"finetune.lora and finetune.data_efficiency")
    return {"method": run.method, "fraction": run.fraction}


def _timing_name(command: str, chosen: dict) -> str | None:
    """Where a stage run's timing goes: results/timing/<stage>/<this>.json."""
    if command in RUN_STAGES:
        from .workflow import Run

        return Run(chosen["task"], chosen["model"], chosen["method"], chosen["fraction"]).timing_name
    return next(iter(chosen.values()), None)


def _launch(processes: int, argv: list[str]) -> None:
    """Run this same command as `processes` DDP workers under torchrun (the workers find
    LOCAL_RANK set and train; Trainer shards the batches and averages the gradients)."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           "-m", "scratchlm", *argv]
    code = subprocess.run(cmd).returncode
    if code != 0:
        raise ScratchError(f"{argv[0]}: {processes} training processes (torchrun) ended with exit status {code}; "
                           f"the workers' error is above, or set processes: 1")


def run(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    # the fast tokenizer's batches on every core where a stage only tokenizes (measured: 62% of
    # raw encode_batch throughput on one core, about 90% on all); off where a DataLoader may fork
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if args.command in TOKENIZING_STAGES else "false")
    if args.command == "preset":
        from .presets import apply
        return apply(args.name, args.params)
    if args.command == "sync":
        from .workflow import sync
        return sync()
    if args.command == "compare":
        from .compare import run as compare
        return compare(args.revs, args.format)
    from . import params as params_mod

    params = params_mod.load(args.params)
    if args.command == "check":
        print(f"{args.params}: valid")
        return
    chosen = _check_names(params, STAGES[args.command][1], args)
    if args.command in RUN_STAGES:
        chosen.update(_check_run(params, args))
    if args.command != "report":
        from datasets import disable_caching

        # `map` on a loaded dataset would otherwise write cache-*.arrow files into the stage's
        # input folder, another stage's DVC output, changing its hash after the fact
        disable_caching()
    stage = importlib.import_module(f".{args.command}", __package__)
    if args.command == "report":  # it reads the timing files; it writes none of its own
        return stage.run(params)
    if args.command in TRAINING_STAGES and params["processes"] > 1 and "LOCAL_RANK" not in os.environ:
        from .training import check_processes

        check_processes(params, args.command, args.model)
        return _launch(params["processes"], argv)
    from .timing import recorded

    with recorded(args.command, _timing_name(args.command, chosen)) as figures:
        figures.update(stage.run(params, **chosen) or {})


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
