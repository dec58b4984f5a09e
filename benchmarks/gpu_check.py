"""The GPU check: the gpu preset's stages on one machine, without Snakemake or DVC, and one JSON of
what they measured — the device and its bf16 matmul peak, each language model's training step
(tokens/s, model FLOP utilisation, memory; benchmarks/gpu.py), every stage's wall time, each
training job's peak GPU memory, the language models' pretraining figures and, per task, the
pretrained and scratch runs with their spread over seeds beside the literature.

    python -m benchmarks.gpu_check --data ../shared/data --out gpu-run.json          # one GPU, ~10 min
    python -m benchmarks.gpu_check --tiny --device cpu --data DIR --out tiny.json    # its CI test

`--data` is a folder in the layout of ../shared/data (conll2003/train.txt, valid.txt;
sst2/train.tsv, dev.tsv; imdb/train.jsonl, unsup.jsonl.gz; any test files beside them are used).
Where a benchmark's test file is absent, as there, the check keeps selection and reporting apart:
CoNLL-2003's validation file becomes the held-out split (validation is carved from train), SST-2's
is GLUE dev as in the preset, IMDB's is carved from its training reviews; the JSON says which.

On a bare GPU machine it needs torch, transformers, tokenizers, pandas and pyarrow, and the
packages in benchmarks/gpu_requirements.txt, carried as wheels (docs/gpu.md). Jobs run as
`python -m scratchlm <stage>` in a work folder, a stage at a time, the jobs of a stage side by
side (`--jobs` on the GPU). The JSON is rewritten after every stage, and jobs not started by
`--deadline-s` are skipped and listed, so a run cut short still reports what it finished.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from .common import ROOT

ON_DEVICE = ("pretrain", "adapt", "finetune", "evaluate")
PACE_SHARE = 0.4  # of the step benchmark's tokens/s that a Trainer run sharing the device keeps (a guess, checked)
# the files of --data, by dataset of the preset: (split, path under --data); an absent test file is
# replaced as the module docstring says
FILES = {"conll2003": {"train": "conll2003/train.txt", "validation": "conll2003/valid.txt",
                       "test": "conll2003/test.txt"},
         "sst2": {"train": "sst2/train.tsv", "test": "sst2/dev.tsv"},
         "imdb": {"train": "imdb/train.jsonl", "test": "imdb/test.jsonl"},
         "unsup": {"train": "imdb/unsup.jsonl.gz"}}
# the tiny variant for the CI test on the CPU: the preset's structure, toy sizes and a few steps, one
# model of each family (the LSTM is the GRU's code with another cell)
TINY = {"tokenizer": {"vocab_size": 400}, "encode": {"max_length": 64}, "pack": {"block_size": 32},
        "pretrain": {"eval_blocks": 16,
                     "models": {"gru": {"embedding_size": 16, "hidden_size": 16}, "lstm": None,
                                "bert": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
                                         "max_position": 64}},
                     "training": {"max_steps": 6, "batch_size": 8, "eval_steps": 3}},
        "adapt": {"eval_blocks": 8, "training": {"max_steps": 3, "batch_size": 8, "eval_steps": 3}},
        "finetune": {"seeds": [1, 2], "training": {"max_steps": 6, "batch_size": 8, "eval_steps": 3}},
        "evaluate": {"batch_size": 16}}
TINY_SAMPLE = {"train": 120, "validation": 30, "test": 30}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="folder in ../shared/data's layout")
    p.add_argument("--out", type=Path, required=True, help="the JSON to write")
    p.add_argument("--workdir", type=Path, help="where the stages run (default: a folder beside --out)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--jobs", type=int, default=4, help="training jobs side by side on the device")
    p.add_argument("--deadline-s", type=float, default=540, help="start no job after this many seconds")
    p.add_argument("--pretrain-budget-s", type=float, default=3600,
                   help="cap each LM's pretraining steps to end in about this many seconds (recorded)")
    p.add_argument("--finetune-max-steps", type=int, default=-1,
                   help="cap each fine-tuning seed's steps (recorded; -1: the preset's epochs and early stopping)")
    p.add_argument("--tiny", action="store_true", help="toy sizes (the CI test, on the CPU)")
    p.add_argument("--render", action="store_true", help="print the Markdown tables of --out's JSON and exit")
    return p


# ---------------------------------------------------------------- the work folder

def _params(args: argparse.Namespace) -> tuple[dict, dict]:
    """(params as written to the work folder, which split each task is reported on)."""
    from scratchlm import params, presets

    raw = params.read_yaml(ROOT / "params.yaml")
    presets.merge(raw, params.read_yaml(presets.PRESETS_DIR / "gpu.yaml"))
    if args.tiny:
        presets.merge(raw, TINY)
    raw["device"] = args.device
    raw["pretrain"]["seeds"] = raw["pretrain"]["seeds"][:1]  # one LM per model: the check times the recipe once
    if args.finetune_max_steps > 0:  # a deterministic cap, so that every run fits the check's minutes
        raw["finetune"]["training"]["max_steps"] = args.finetune_max_steps
    datasets, held_out = raw["data"]["datasets"], {}
    for name in ("conll2003", "sst2", "imdb"):
        held_out[name] = _files(datasets[name], name, args)
        datasets["text"]["parts"][name] = copy.deepcopy(datasets[name])  # the corpus takes the task's splits
    _files(datasets["text"]["parts"]["unsup"], "unsup", args)
    if args.tiny:
        for spec in [*(datasets[n] for n in held_out), *datasets["text"]["parts"].values()]:
            spec["sample"] = dict(TINY_SAMPLE)
    return raw, held_out


def _found(data: Path, rel: str) -> str | None:
    """The file of --data for a path of FILES, as it is or gzipped (the readers look through .gz)."""
    return next((r for r in (rel, rel + ".gz") if (data / r).is_file()), None)


def _files(spec: dict, name: str, args: argparse.Namespace) -> str:
    """Point a dataset at the files of --data (links under data/external/); say what its test split is."""
    files = {split: f"data/external/{found}" for split, rel in FILES[name].items()
             if (found := _found(args.data, rel))}
    if "train" not in files:
        raise SystemExit(f"gpu_check: {args.data / FILES[name]['train']} not found (--data must hold "
                         f"{', '.join(sorted({r for f in FILES.values() for r in f.values()}))})")
    held_out = "the benchmark's test file"
    if name != "unsup" and "test" not in files:
        if "validation" in files:  # its validation file is held out; validation comes out of train instead
            files["test"] = files.pop("validation")
            spec["validation_fraction"] = 0.1
            held_out = "its validation file (not used for selection; validation carved from train)"
        else:
            spec["test_fraction"] = 0.1
            held_out = "10% carved from its training file"
    spec["files"] = {"train": files["train"], "validation": files.get("validation"), "test": files.get("test")}
    if name == "sst2" and _found(args.data, FILES["sst2"]["test"]):
        held_out = "GLUE dev (the preset's test split; validation carved from train)"
    return held_out


def prepare(args: argparse.Namespace, work: Path) -> tuple[dict, dict]:
    """The work folder: params.yaml and data/external/ links to --data's files."""
    import yaml

    raw, held_out = _params(args)
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for splits in FILES.values():
        for rel in filter(None, (_found(args.data, r) for r in splits.values())):
            source, link = (args.data / rel).resolve(), work / "data" / "external" / rel
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(source)
    return raw, held_out


# ---------------------------------------------------------------- running the jobs

def _run_job(argv: list[str], work: Path, threads: int, deadline: float) -> dict:
    """One `python -m scratchlm` job; its exit status, seconds and the end of its log."""
    log = work / "logs" / (argv[0] + "".join(f"_{a}" for a in argv[2::2]) + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    start = time.time()
    with open(log, "w") as f:
        try:
            code = subprocess.run([sys.executable, "-m", "scratchlm", *argv], cwd=work, env=env, stdout=f,
                                  stderr=subprocess.STDOUT, timeout=max(1.0, deadline - start + 600)).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    found = {"job": " ".join(argv), "exit": code, "seconds": round(time.time() - start, 1)}
    if code != 0:
        found["log_tail"] = log.read_text(errors="replace").splitlines()[-5:]
    return found


def run_stage(stage: str, jobs: list, work: Path, args: argparse.Namespace, deadline: float) -> dict:
    """A stage's jobs side by side; those not started by the deadline are skipped."""
    width = args.jobs if stage in ON_DEVICE else (os.cpu_count() or 1)
    width = max(1, min(width, len(jobs)))
    threads = max(1, (os.cpu_count() or 1) // width)
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(width) as pool:
        futures = []
        for job in jobs:
            argv = [stage, *job.args()]
            futures.append(pool.submit(lambda a=argv: _run_job(a, work, threads, deadline)
                                       if time.time() < deadline else {"job": " ".join(a), "exit": "skipped"}))
        results = [f.result() for f in futures]
    return _summary(results, start, len(jobs), width)


def _summary(results: list[dict], start: float, jobs: int, width: int) -> dict:
    """A stage's figures for the report: its wall time, and which jobs were skipped or failed."""
    return {"wall_s": round(time.time() - start, 1), "jobs": jobs, "side_by_side": width,
            "job_seconds": {r["job"]: r["seconds"] for r in results if "seconds" in r},
            "skipped": [r["job"] for r in results if r["exit"] == "skipped"],
            "failed": [r for r in results if r["exit"] not in (0, "skipped")]}


# ---------------------------------------------------------------- what the run measured

def _read(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def language_models(work: Path, p: dict, bench: dict) -> dict:
    """Per LM: the pipeline's pretraining figures (Trainer's tokens/s, evaluations included) beside
    the step benchmark's, and the job's peak GPU memory."""
    from scratchlm import paths

    found = {}
    seed = p["pretrain"]["seeds"][0]  # the check pretrains one LM per model (_params)
    for name in p["pretrain"]["models"]:
        metrics = _read(work / paths.PRETRAIN_METRICS.format(model=name, seed=seed)) or {}
        timing = _read(work / paths.timing("pretrain", f"{name}/seed{seed}")) or {}
        step = bench.get("models", {}).get(name, {})
        pipeline_tps = timing.get("tokens_per_second")
        found[name] = {"val_perplexity": metrics.get("val_perplexity"), "steps": metrics.get("steps"),
                       "parameters": metrics.get("parameters"), "precision": metrics.get("precision"),
                       "pipeline_tokens_per_second": pipeline_tps,
                       "pipeline_train_seconds": timing.get("train_seconds"),
                       "pipeline_mfu": round(step["flops_per_token"] * pipeline_tps / bench["peak"], 4)
                       if step and pipeline_tps and bench.get("peak") else None,
                       "peak_gpu_mb": timing.get("peak_gpu_mb"), "step_benchmark": step}
    return found


def _seeds(work: Path, task: str, model: str, run: str, metric: str) -> dict[str, float]:
    from scratchlm import paths

    details = _read(work / paths.DETAILS.format(task=task, model=model, run=run)) or {"seeds": {}}
    return {seed: scores[metric] for seed, scores in details["seeds"].items()}


def tasks(work: Path, p: dict, held_out: dict) -> dict:
    """Per task and model: the pretrained `full` run and its `scratch` control on the held-out
    split, mean and spread over seeds, and the per-seed paired gain; the literature beside them."""
    from scratchlm.kinds import TASK_METRICS
    from scratchlm.published import BENCHMARKS

    found = {}
    for task, spec in p["tasks"].items():
        metric = TASK_METRICS[spec["type"]][0]
        rows = {}
        for model in p["pretrain"]["models"]:
            full, scratch = (_seeds(work, task, model, run, metric) for run in ("full", "scratch"))
            rows[model] = {"full": _spread(list(full.values())), "scratch": _spread(list(scratch.values())),
                           "gain": _spread([full[s] - scratch[s] for s in full if s in scratch]),
                           "training": {run: _trained(work, task, model, run) for run in ("full", "scratch")}}
        bench = p["data"]["datasets"][spec["dataset"]].get("benchmark")
        found[task] = {"metric": metric, "split": held_out.get(spec["dataset"]), "models": rows,
                       "literature": [r._asdict() for r in BENCHMARKS.get(bench, [])]}
    return found


def _trained(work: Path, task: str, model: str, run: str) -> dict:
    """The run's validation score and mean steps over its seeds (against the cap: did early stopping end it?)."""
    from scratchlm import paths

    m = _read(work / paths.FINETUNE_METRICS.format(task=task, model=model, run=run)) or {}
    return {k: v for k, v in m.items() if k.startswith("val_") or k in ("steps", "train_examples", "precision")}


def _spread(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": round(statistics.mean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "per_seed": [round(v, 4) for v in values]}


def device_info(device: str) -> dict:
    import torch
    import transformers

    info = {"torch": torch.__version__, "transformers": transformers.__version__, "python": sys.version.split()[0],
            "cpus": os.cpu_count()}
    if device != "cpu" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, memory_gb=round(props.total_memory / 2 ** 30, 1),
                    multiprocessors=props.multi_processor_count, cuda=torch.version.cuda)
    else:
        info["name"] = "cpu"
    return info


def fit_pretraining(p: dict, raw: dict, work: Path, bench: dict, budget_s: float) -> dict:
    """Cap each LM's pretraining steps so that it ends within `budget_s` at the pace the step
    benchmark measured (a share of it: Trainer's evaluations, and the models sharing the device),
    where the preset's epochs would take longer; rewrite params.yaml with the caps. Returns, per
    model, the preset's steps and the ones this run trains, for the report."""
    import yaml
    from datasets import load_from_disk

    from scratchlm import paths
    from scratchlm.training_config import training_config

    blocks = len(load_from_disk(str(work / paths.BLOCKS.format(corpus=p["pretrain"]["corpus"])))["train"])
    found = {}
    for name in p["pretrain"]["models"]:
        cfg = training_config(p, "pretrain", name)
        planned = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * math.ceil(blocks / cfg.batch_size))
        pace = bench["models"][name]["tokens_per_second"] * PACE_SHARE / (cfg.batch_size * p["pack"]["block_size"])
        steps = min(planned, max(1, int(budget_s * pace)))
        found[name] = {"preset_steps": planned, "steps": steps, "train_blocks": blocks,
                       "epochs": round(steps * cfg.batch_size / blocks, 2)}
        if steps < planned:
            raw["pretrain"]["models"][name].setdefault("training", {})["max_steps"] = steps
    (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return found


def run_finetuning(p: dict, work: Path, args: argparse.Namespace, deadline: float, on_done=None) -> dict:
    """Each fine-tuning run, then its evaluation, in one worker: test figures arrive run by run, so
    a run cut short by the deadline still reports every run it finished. Pairs (full, scratch) of a
    task and model are next to each other in the queue."""
    from scratchlm import dag

    runs = sorted(dag.jobs(p, "finetune"), key=lambda j: (j.wildcards["task"], j.wildcards["model"]))
    width = max(1, min(args.jobs, len(runs)))
    threads = max(1, (os.cpu_count() or 1) // width)

    def both(job) -> list[dict]:
        if time.time() >= deadline:
            return [{"job": " ".join(["finetune", *job.args()]), "exit": "skipped"}]
        done = [_run_job(["finetune", *job.args()], work, threads, deadline)]
        if done[0]["exit"] == 0:
            done.append(_run_job(["evaluate", *job.args()], work, threads, deadline))
        if on_done is not None:
            on_done()
        return done

    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(width) as pool:
        results = [r for found in pool.map(both, runs) for r in found]
    return _summary(results, start, len(runs), width)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.render:
        print(markdown(json.loads(args.out.read_text())), end="")
        return
    began = time.time()
    deadline = began + args.deadline_s
    args.data, args.out = args.data.resolve(), args.out.resolve()  # the stages run in the work folder
    work = (args.workdir or args.out.with_suffix(".work")).resolve()
    raw, held_out = prepare(args, work)
    from benchmarks import gpu
    from scratchlm import dag, params

    os.chdir(work)  # params.load and the stages read ./params.yaml
    p = params.load("params.yaml")
    device = "cuda" if args.device != "cpu" and gpu_available() else "cpu"
    report: dict = {"check": "tiny (CI)" if args.tiny else "gpu preset", "device": device_info(device),
                    "held_out_splits": held_out, "deadline_s": args.deadline_s, "jobs_side_by_side": args.jobs,
                    "finetune_max_steps": args.finetune_max_steps, "stages": {}}

    def stage_done(stage: str, figures: dict) -> None:
        report["stages"][stage] = figures
        report["wall_s"] = round(time.time() - began, 1)
        write(args.out, report)
        print(f"gpu_check: {stage} done after {report['wall_s']} s ({figures['wall_s']} s, "
              f"{len(figures['failed'])} failed, {len(figures['skipped'])} skipped)", flush=True)

    write(args.out, report)
    sizes = gpu.CPU if args.tiny or device == "cpu" else gpu.GPU
    outcome = gpu.measure(p, device, sizes._replace(compile=False))  # compiling waits until the stages ran
    report["step_benchmark"] = {**outcome.detail, "peak": outcome.detail[f"matmul_peak_{outcome.detail['precision']}"]}
    for stage in ("data", "tokenizer", "encode", "pack"):
        stage_done(stage, run_stage(stage, dag.jobs(p, stage), work, args, deadline))
    report["pretraining_budget"] = fit_pretraining(p, raw, work, report["step_benchmark"], args.pretrain_budget_s)
    p = params.load("params.yaml")
    for stage in ("pretrain", "adapt", "settings"):
        stage_done(stage, run_stage(stage, dag.jobs(p, stage), work, args, deadline))
    report["language_models"] = language_models(work, p, report["step_benchmark"])
    lock = threading.Lock()

    def run_done() -> None:  # the figures so far, should the run be cut short
        with lock:
            report["tasks"] = tasks(work, p, held_out)
            report["wall_s"] = round(time.time() - began, 1)
            write(args.out, report)

    stage_done("finetune+evaluate", run_finetuning(p, work, args, deadline, run_done))
    report["tasks"] = tasks(work, p, held_out)
    report["wall_s"] = round(time.time() - began, 1)
    write(args.out, report)
    if sizes.compile and time.time() < deadline + 60:  # the encoder's step under torch.compile, if time is left
        report["step_benchmark"]["compiled"] = gpu.compiled_steps(p, device, sizes, report["step_benchmark"]["peak"])
        write(args.out, report)
    print(f"gpu_check: wrote {args.out} after {report['wall_s']} s", flush=True)


def _pm(cell: dict) -> str:
    """`mean ± std` in points, or a dash for no seed."""
    return f"{100 * cell['mean']:.2f} ± {100 * cell['std']:.2f}" if cell and cell.get("n") else "—"


def _share(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def _lm_row(name: str, lm: dict, report: dict) -> str:
    b = lm["step_benchmark"]
    compiled = report["step_benchmark"].get("compiled", {}).get(name, {})
    epochs = report.get("pretraining_budget", {}).get(name, {}).get("epochs", "?")
    cells = [name, f"{b['parameters']:,}", f"{b['tokens_per_second']:,}", _share(b["mfu"]),
             _share(compiled.get("mfu")), "—" if b["peak_memory_mb"] is None else f"{b['peak_memory_mb']:,.0f} MB",
             f"{lm['pipeline_tokens_per_second'] or 0:,.0f}", _share(lm["pipeline_mfu"]), f"{lm['steps']} ({epochs})",
             str(lm["val_perplexity"])]
    return "| " + " | ".join(cells) + " |"


def markdown(report: dict) -> str:
    """The tables of docs/gpu.md, from a run's JSON."""
    d, step = report["device"], report["step_benchmark"]
    lines = [f"Device: {d['name']} ({d.get('memory_gb', '?')} GB, {d.get('multiprocessors', '?')} SMs), CUDA "
             f"{d.get('cuda', '—')}, torch {d['torch']}, transformers {d['transformers']}, {d['cpus']} CPU cores. "
             f"Measured {step['precision']} matmul peak: {step['peak'] / 1e12:,.0f} TFLOP/s. Whole run: "
             f"{report['wall_s']:,.0f} s.", "",
             "| LM | parameters | step: tokens/s | step: MFU | compiled step: MFU | step memory | pipeline: tokens/s "
             "| pipeline: MFU | steps (epochs) | val perplexity |", "|" + "---|" * 10]
    lines += [_lm_row(name, lm, report) for name, lm in report.get("language_models", {}).items()]
    lines += ["", "| stage | wall s | jobs | side by side | failed | skipped |", "|" + "---|" * 6]
    lines += [f"| {stage} | {f['wall_s']:,.0f} | {f['jobs']} | {f['side_by_side']} | {len(f['failed'])} | "
              f"{len(f['skipped'])} |" for stage, f in report["stages"].items()]
    lines += ["", "| task | metric | held-out split | model | pretrained `full` | `scratch` | gain (points) |",
              "|" + "---|" * 7]
    lines += [f"| {task} | {t['metric']} | {t['split']} | {model} | {_pm(arms['full'])} | {_pm(arms['scratch'])} "
              f"| {_pm(arms['gain'])} |" for task, t in report.get("tasks", {}).items()
              for model, arms in t["models"].items()]
    return "\n".join(lines) + "\n"


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def write(path: Path, report: dict) -> None:
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str))
    tmp.replace(path)


if __name__ == "__main__":
    main()
