"""Stage `report`: results/report.md from the metric files of the runs params declare (never a
glob: a stale file from a removed run cannot sneak into the table)."""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from . import metrics
from . import params as params_mod
from .data import stats_file
from .evaluate import output
from .io import read_json, write_text
from .pretrain import results_dir as pretrain_results
from .workflow import Run, runs

REPORT = Path("results/report.md")
PACKAGES = ["torch", "transformers", "datasets", "tokenizers", "snakemake", "dvc", "dvclive", "scikit-learn"]


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


MAIN = {"sequence-classification": ("accuracy", "macro_f1"), "token-classification": ("entity_f1", "token_accuracy")}


def _main(params: dict, task: str) -> tuple[str, str]:
    """(main, secondary) test metric of a task."""
    return MAIN[params["tasks"][task]["type"]]


def summary(params: dict, metrics: dict) -> str:
    rows = []
    for run, m in metrics.items():
        main, second = _main(params, run.task)
        rows.append([run.task, run.model, run.name, f"{main} {_pct(m[main])}", f"{second} {_pct(m[second])}",
                     f"{m['train_examples']:,}", f"{m['trainable_parameters']:,}", f"{100 * m['trainable_fraction']:.1f}%"])
    return _table(["task", "model", "run", "test metric %", "second metric %", "train examples", "trained params",
                   "trained share"], rows)


def pretraining_gain(params: dict, metrics: dict) -> str:
    rows = []
    for run, m in metrics.items():
        control = metrics.get(run._replace(method="scratch"))
        if run.method != "scratch" and control:
            main = _main(params, run.task)[0]
            gain = m[main] - control[main]
            rows.append([run.task, run.model, run.name, main, _pct(control[main]), _pct(m[main]), f"{100 * gain:+.2f}"])
    if not rows:
        return "_No `scratch` control among the methods: add it to finetune.methods to see what pretraining buys._"
    return _table(["task", "model", "run", "metric", "scratch %", "pretrained %", "gain (points)"], rows)


def data_efficiency(params: dict, metrics: dict) -> str:
    """The main test metric against the share of training labels, pretrained next to scratch."""
    eff = params["finetune"]["data_efficiency"]
    rows = []
    for run, m in sorted(metrics.items(), key=lambda kv: (kv[0].task, kv[0].model, kv[0].method, kv[0].fraction)):
        if run.model in eff["models"] and run.method in eff["methods"]:
            main = _main(params, run.task)[0]
            rows.append([run.task, run.model, run.method, f"{100 * run.fraction:g}%", f"{m['train_examples']:,}",
                         f"{main} {_pct(m[main])}"])
    if not rows:
        return "_No data-efficiency runs: list models in finetune.data_efficiency to see the curve._"
    return _table(["task", "model", "method", "labels used", "train examples", "test metric %"], rows)


def entity_types(params: dict, metrics: dict) -> str:
    """Entity-level F1 per type (seqeval, strict IOB2) for every NER run."""
    runs_ = [(r, m) for r, m in metrics.items() if "per_type" in m]
    if not runs_:
        return "_No token-classification task._"
    types = sorted({t for _, m in runs_ for t in m["per_type"]})
    return _table(["task", "model", "run", *[f"{t} F1 %" for t in types]],
                  [[r.task, r.model, r.name, *[_pct(m["per_type"].get(t, {}).get("f1-score", 0.0)) for t in types]]
                   for r, m in runs_])


def language_models(params: dict) -> str:
    rows, samples = [], []
    for model in params["pretrain"]["models"]:
        m = read_json(pretrain_results(model) / "metrics.json")
        rows.append([model, m["val_perplexity"], m["unigram_perplexity"], m["steps"], f"{m['parameters']:,}",
                     f"{m['tokens_per_second']:,.0f}", m["train_seconds"]])
        samples.append(f"**{model}**\n\n" + (pretrain_results(model) / "samples.md").read_text(encoding="utf-8"))
    table = _table(["model", "validation perplexity", "unigram perplexity", "steps", "parameters", "tokens/s",
                    "train s"], rows)
    return (table + "\n\nWhat each learned — causal LMs: sampled continuations (top-k 20); encoders: top guesses "
            "for the masked word:\n\n" + "\n".join(samples))


def datasets_section(params: dict) -> str:
    rows = []
    for name, spec in params["data"]["datasets"].items():
        s = read_json(stats_file(name))
        rows.append([name, f"{spec['source']}/{spec['generator']}", s["splits"]["train"], s["splits"]["validation"],
                     s["splits"]["test"], s["train"]["words_p50"], s["train"]["words_max"],
                     s["test_overlap_with_train"]])
    return _table(["dataset", "source", "train", "validation", "test", "median words", "max words",
                   "test overlap"], rows)


def environment(params: dict) -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    versions = []
    for pkg in PACKAGES:
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    dirty = "dirty" if git("status", "--porcelain", "--untracked-files=no") else "clean"
    return "\n".join([f"- git commit: `{git('rev-parse', '--short', 'HEAD')}` ({dirty} work tree)",
                      f"- params hash: `{params_mod.digest(params)}`, seed {params['seed']}, device {params['device']}",
                      f"- Python {platform.python_version()} on {platform.machine()}",
                      "- " + ", ".join(versions)])


def per_class_report(run: Run) -> str:
    """Recomputed from the saved predictions, in the printed layouts of sklearn (classes) or
    seqeval and sklearn (entities, then tags)."""
    lines = [json.loads(line) for line in
             output("predictions", run.task, run.model, run.name).read_text(encoding="utf-8").splitlines()]
    if lines and "tags" in lines[0]:
        return metrics.entities_text([r["tags"] for r in lines], [r["predicted"] for r in lines])
    names = read_json(output("metrics", run.task, run.model, run.name))["per_class"]
    return metrics.classification_text([r["label"] for r in lines], [r["prediction"] for r in lines], list(names))


def build(params: dict) -> str:
    found = {run: read_json(output("metrics", run.task, run.model, run.name)) for run in runs(params)}
    details = "\n\n".join(f"**{r.task} / {r.model} / {r.name}**\n\n```\n{per_class_report(r)}```" for r in found)
    return "\n\n".join([
        f"# {params['report']['title']}",
        "## Test results\n\nEvery row is one fine-tuning run, selected on validation, scored once on the test split "
        "(classification: accuracy and macro F1; NER: entity F1, seqeval strict IOB2, and token accuracy).\n\n"
        + summary(params, found),
        "## What pretraining bought\n\nEach run against its `scratch` control (same architecture, data and budget, "
        "random initialisation), on the task's main metric.\n\n" + pretraining_gain(params, found),
        "## Data efficiency\n\n" + data_efficiency(params, found),
        "## NER: entity F1 per type\n\n" + entity_types(params, found),
        "## Language models\n\n" + language_models(params),
        "## Per-class reports\n\n" + details,
        "## Datasets\n\n" + datasets_section(params),
        "## Environment\n\n" + environment(params),
    ]) + "\n"


def run(params: dict) -> None:
    write_text(REPORT, build(params))
    print(f"report: wrote {REPORT}")
