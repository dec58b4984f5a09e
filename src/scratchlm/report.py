"""Stage `report`: results/report.md from the metric files of the runs params declare (never a
glob: a stale file from a removed run cannot sneak into the table)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from . import params as params_mod
from .data import stats_file
from .evaluate import output, read_predictions, report_text
from .io import read_json, write_text
from .pretrain import results_dir as pretrain_results
from .workflow import runs

REPORT = Path("results/report.md")
PACKAGES = ["torch", "transformers", "datasets", "tokenizers", "snakemake", "dvc", "dvclive", "scikit-learn"]


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def summary(params: dict, metrics: dict) -> str:
    rows = []
    for (task, model, method), m in metrics.items():
        rows.append([task, model, method, _pct(m["accuracy"]), _pct(m["macro_f1"]),
                     f"{m['trainable_parameters']:,}", f"{100 * m['trainable_fraction']:.1f}%"])
    return _table(["task", "model", "method", "test accuracy %", "test macro F1 %", "trained params",
                   "trained share"], rows)


def pretraining_gain(metrics: dict) -> str:
    rows = []
    for (task, model, method), m in metrics.items():
        control = metrics.get((task, model, "scratch"))
        if method != "scratch" and control:
            gain = m["accuracy"] - control["accuracy"]
            rows.append([task, model, method, _pct(control["accuracy"]), _pct(m["accuracy"]), f"{100 * gain:+.2f}"])
    if not rows:
        return "_No `scratch` control among the methods: add it to finetune.methods to see what pretraining buys._"
    return _table(["task", "model", "method", "scratch accuracy %", "pretrained accuracy %", "gain (points)"], rows)


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


def per_class_report(task: str, model: str, method: str, metrics: dict) -> str:
    """Recomputed from the saved predictions, in sklearn's printed layout."""
    y_true, y_pred = read_predictions(output("predictions", task, model, method))
    return report_text(y_true, y_pred, list(metrics["per_class"]))


def build(params: dict) -> str:
    metrics = {run: read_json(output("metrics", *run)) for run in runs(params)}
    details = "\n\n".join(f"**{t} / {m} / {meth}**\n\n```\n{per_class_report(t, m, meth, v)}```"
                          for (t, m, meth), v in metrics.items())
    return "\n\n".join([
        f"# {params['report']['title']}",
        "## Test results\n\nEvery cell is one fine-tuning run, selected on validation, scored once on the test split.\n\n"
        + summary(params, metrics),
        "## What pretraining bought\n\n" + pretraining_gain(metrics),
        "## Language models\n\n" + language_models(params),
        "## Per-class reports\n\n" + details,
        "## Datasets\n\n" + datasets_section(params),
        "## Environment\n\n" + environment(params),
    ]) + "\n"


def run(params: dict) -> None:
    write_text(REPORT, build(params))
    print(f"report: wrote {REPORT}")
