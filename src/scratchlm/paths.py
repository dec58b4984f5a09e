"""Every file and folder the pipeline writes, in one place: the templates the DAG table (dag.py)
declares to Snakemake and DVC, and the functions the stages, the report and the tests call.

Templates name their wildcards in braces ({dataset}, {task}, {model}, {seed}: a pretraining seed,
{run}); `path()` fills them.
"""

from __future__ import annotations

from pathlib import Path

# stage outputs, by the stage that writes them
RAW = "data/raw/{dataset}"
DATA_STATS = "results/data/{dataset}.json"
TOKENIZER = "models/tokenizer"
ENCODED = "data/encoded/{task}"
BLOCKS = "data/blocks/{corpus}"
PRETRAINED = "models/pretrain/{model}/seed{seed}"  # one LM per model and pretraining seed (pretrain.seeds)
PRETRAIN_METRICS = "results/pretrain/{model}/seed{seed}/metrics.json"
PRETRAIN_PLOTS = "results/pretrain/{model}/seed{seed}/plots"
PRETRAIN_SAMPLES = "results/pretrain/{model}/seed{seed}/samples.md"
ADAPTED = "models/adapt/{task}/{model}/seed{seed}"
ADAPT_METRICS = "results/adapt/{task}/{model}/seed{seed}/metrics.json"
ADAPT_PLOTS = "results/adapt/{task}/{model}/seed{seed}/plots"
SETTINGS = "results/settings/finetune/{model}.json"
FINETUNED = "models/finetune/{task}/{model}/{run}"
FINETUNE_METRICS = "results/finetune/{task}/{model}/{run}/metrics.json"
FINETUNE_PLOTS = "results/finetune/{task}/{model}/{run}/plots"
METRICS = "results/metrics/{task}/{model}/{run}.json"
DETAILS = "results/details/{task}/{model}/{run}.json"
PREDICTIONS = "results/predictions/{task}/{model}/{run}.jsonl"
CONFUSION = "results/plots/confusion/{task}/{model}/{run}.json"
HEADLINE = "results/headline.json"
CURVES = "results/plots/curves.json"
REPORT = "results/report.md"
REPORT_HTML = "results/report.html"
FIGURES = "results/figures"

TIMING = "results/timing"  # results/timing/<stage>.json, or results/timing/<stage>/<job>.json
LOGS = "logs"  # Snakemake's job logs, the same layout as the timing files
CHECKPOINTS = Path("checkpoints")  # a training run's resumable state; removed when it finishes
EXTERNAL = Path("data/external")  # the user's own files, read by `source: local` datasets


def path(template: str, **wildcards) -> Path:
    return Path(template.format(**wildcards))


def timing(stage: str, job: str | None) -> Path:
    """results/timing/<stage>.json for a stage run once, results/timing/<stage>/<job>.json otherwise."""
    return Path(TIMING) / (f"{stage}.json" if job is None else f"{stage}/{job}.json")


def log(stage: str, job: str | None) -> Path:
    return Path(LOGS) / (f"{stage}.log" if job is None else f"{stage}/{job}.log")
