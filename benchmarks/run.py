"""Run every measurement, one after the other in this process (tokenization and the demo in
subprocesses of their own), and write results/bench.json and results/bench.md.

    python -m benchmarks.run                 # the full run (`make bench`): about 1 h 20 min on 2 cores
                                             # (and a GPU section where CUDA is present: benchmarks/gpu.py)
    python -m benchmarks.run --quick --skip-demo --data-dir /nonexistent --out /tmp/b   # seconds

Run it on a quiet machine: every figure is a wall time or a throughput. A goal that is missed
shows as "no" in the table; the command still succeeds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

from . import demo, finetune_speed, gpu, overhead, pretrain_mfu, real_cpu, sources, tokenize_speed
from .common import DEFAULT_DATA, ROOT, Outcome, cores, machine, versions

REQUIRED = ("finetune_speedup_vs_tutorial", "finetune_speedup_vs_trainer_defaults", "tokenize_fraction_of_raw",
            "pretrain_mfu_gru", "pretrain_mfu_lstm", "pretrain_mfu_peak_gru", "pretrain_mfu_peak_lstm",
            "pretrain_mfu_peak_bert", "pretrain_tokens_per_hour_ratio", "noop_snakemake_s", "noop_dvc_status_s",
            "demo_wall_s")
VOCAB = {False: 8000, True: 400}  # the shared tokenizer's vocabulary: full run, quick run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the harness in seconds")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                        help="real SST-2 and IMDB (default ../shared/data); synthetic data when absent")
    parser.add_argument("--out", type=Path, default=ROOT / "results", help="where bench.json and bench.md go")
    parser.add_argument("--skip-demo", action="store_true", help="do not time the demo reproduction (null)")
    parser.add_argument("--demo-timeout", type=float, default=3600, help="seconds before the demo run is given up")
    parser.add_argument("--skip-real", action="store_true",
                        help="do not run the real-cpu preset (about an hour; null without ../shared/data anyway)")
    parser.add_argument("--threads", type=int, default=cores(), help="torch threads (default: all cores)")
    return parser


def _quiet() -> None:
    """The stage commands' environment (cli.main) and no progress bars in the benchmark's output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()


def measurements(args: argparse.Namespace):
    """(name, thunk) of each measurement, in the order they run. The demo runs before the
    overhead, whose fallback is the demo's fresh reproduction (kept until both are done)."""
    from scratchlm.params import load

    params = load(ROOT / "params.yaml")
    q = args.quick
    ft = finetune_speed.QUICK if q else finetune_speed.FULL
    data = sources.sentiment(args.data_dir, ft.train, ft.dev, ft.target_examples, params["seed"])
    tok = sources.tokenizer(data.train_texts, VOCAB[q])
    yield "tokenize", lambda: tokenize_speed.measure(args.data_dir, tok, tokenize_speed.QUICK if q
                                                     else tokenize_speed.FULL, params["seed"])
    yield "finetune", lambda: finetune_speed.measure(data, tok, params, ft)
    yield "pretrain", lambda: pretrain_mfu.measure(params, pretrain_mfu.QUICK if q else pretrain_mfu.FULL)
    yield "gpu", lambda: _gpu(q)
    places = {"repository root": ROOT}
    with contextlib.closing(demo.Demo(ROOT, args.demo_timeout)) as reproduction:
        if args.skip_demo:
            yield "demo", lambda: demo.not_measured("skipped (--skip-demo)")
        else:
            yield "demo", reproduction.measure
        if reproduction.copy:
            places["the demo's fresh reproduction"] = reproduction.copy
        yield "overhead", lambda: overhead.measure(places, repeats=1 if q else 3)
    if args.skip_real or q:
        yield "real-cpu", lambda: real_cpu.not_measured("skipped (--skip-real or --quick)")
    else:
        yield "real-cpu", lambda: real_cpu.measure(ROOT, args.data_dir, 2 * real_cpu.GOAL_S)


def _gpu(quick: bool):
    """The GPU section, where CUDA is present: the gpu preset's language models on the device."""
    import torch

    from scratchlm import params, presets

    if not torch.cuda.is_available():
        return Outcome(nulls={"gpu_pretrain_mfu_bert": "no CUDA device on this machine"})
    raw = params.read_yaml(ROOT / "params.yaml")
    presets.merge(raw, params.read_yaml(presets.PRESETS_DIR / "gpu.yaml"))
    return gpu.measure(params.validate(raw), "cuda", gpu.CPU if quick else gpu.GPU)


def bench(args: argparse.Namespace) -> tuple[dict, list]:
    """Every measurement's outcome merged: (bench.json's content, the table rows)."""
    import torch

    torch.set_num_threads(args.threads)
    result: dict = {"quick": args.quick, "nulls": {}}
    detail: dict = {"machine": machine(), "versions": versions(), "torch_threads": args.threads, "durations_s": {},
                    "load_average": {}}
    rows = []
    for name, thunk in measurements(args):
        detail["load_average"][name] = os.getloadavg()[0]  # busy cores before it: the figures' caveat
        start = time.perf_counter()
        outcome: Outcome = thunk()
        detail["durations_s"][name] = round(time.perf_counter() - start, 1)
        print(f"bench: {name} done in {detail['durations_s'][name]} s", flush=True)
        result.update(outcome.summary)
        result["nulls"].update(outcome.nulls)
        detail[name] = outcome.detail
        rows += outcome.rows
    required = {key: result.pop(key) for key in REQUIRED}  # KeyError: a measurement lost a required key
    return {**required, **result, "detail": detail}, rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(result: dict, rows: list) -> str:
    """The table (measurement, ours, peer, ratio, goal, met?) and why any number is missing."""
    m = result["detail"]["machine"]
    lines = [f"# Benchmarks{' (quick mode: tiny sizes, not comparable)' if result['quick'] else ''}", "",
             f"{m['cpu']}, {m['cores']} cores, torch {result['detail']['versions']['torch']} "
             f"(torch threads: {result['detail']['torch_threads']}), commit {m['git_commit'][:10]}"
             f"{' (dirty)' if m['git_dirty'] else ''}. 1-minute load average before each measurement: "
             + ", ".join(f"{k} {v:.2f}" for k, v in result["detail"]["load_average"].items()) + ".", "",
             "| measurement | ours | peer | ratio | goal | met? |", "|---|---|---|---|---|---|"]
    for r in rows:
        label = f"{r.measurement} (`{r.key}`)" if r.key else r.measurement
        met = {True: "yes", False: "no", None: "—"}[r.met]
        ratio = "—" if r.ratio is None else f"{r.ratio:g}"
        lines.append(f"| {_cell(label)} | {r.ours} | {r.peer} | {ratio} | {r.goal} | {met} |")
    if result["nulls"]:
        lines += ["", "Not measured:", ""] + [f"- `{k}`: {why}" for k, why in result["nulls"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    _quiet()
    from scratchlm.atomic import write_json, write_text

    result, rows = bench(args)
    text = markdown(result, rows)
    write_json(args.out / "bench.json", result)
    write_text(args.out / "bench.md", text)
    print(text)


if __name__ == "__main__":
    main()
