"""The real-data preset on this machine: the committed tree in a temporary folder, the public
files of ../shared/data laid out under data/external/ as data/external/README.md says
(CoNLL-2003's validation file stands in for its test file, which that folder lacks),
`scratchlm preset real-cpu`, then `snakemake --cores all` timed from the raw files to the report.

Its figures are the test split's, which in this layout are validation files: CoNLL-2003's
test.txt is a link to its valid.txt (which also selects the checkpoint), and SST-2's test split is
GLUE's dev file, which no run selects on (the checkpoint is selected on whole sentences carved
from train, none of them a phrase of a training row or holding one). Per task: the
best pretrained method's mean over seeds, and the gain of the pretrained `full` runs over their
`scratch` controls (mean over seeds, averaged over the models)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from .common import Outcome, Row, at_least, at_most, fmt, subprocess_env
from .demo import export

GOAL_S = 3600.0
KEYS = ("real_cpu_wall_s", "real_conll_val_f1", "real_conll_gain", "real_sst2_val_acc", "real_sst2_gain")
# data/external/<path> -> the file of ../shared/data it is
LAYOUT = {"conll2003/train.txt": "conll2003/train.txt", "conll2003/valid.txt": "conll2003/valid.txt",
          "conll2003/test.txt": "conll2003/valid.txt", "sst2/train.tsv": "sst2/train.tsv",
          "sst2/dev.tsv": "sst2/dev.tsv", "imdb/unsup.jsonl.gz": "imdb/unsup.jsonl.gz",
          "imdb/train.jsonl": "imdb/train.jsonl"}
GOALS = {"real_conll_val_f1": 0.90, "real_conll_gain": 0.03, "real_sst2_val_acc": 0.86, "real_sst2_gain": 0.03}


def not_measured(reason: str) -> Outcome:
    return Outcome(summary={k: None for k in KEYS}, nulls={k: reason for k in KEYS},
                   rows=[Row("real-cpu preset `snakemake --cores all` from the raw files", "—", "—", None,
                             f"≤ {GOAL_S / 60:g} min", None, KEYS[0])])


def held_out_figures(repo: Path, task: str, metric: str) -> tuple[float | None, float | None]:
    """(best pretrained method's mean, mean gain of full over scratch) of a task, on its test split."""
    runs = {}
    for f in (repo / "results/finetune" / task).glob("*/*/metrics.json"):
        runs[(f.parent.parent.name, f.parent.name)] = json.loads(f.read_text())
    pretrained = [m[metric] for (_, run), m in runs.items() if run in ("full", "frozen")]
    gains = []
    for (model, run), m in runs.items():
        if run == "full" and (model, "scratch") in runs:
            gains.append(m[metric] - runs[(model, "scratch")][metric])
    return (max(pretrained) if pretrained else None), (sum(gains) / len(gains) if gains else None)


def measure(root: Path, data_dir: Path, timeout_s: float) -> Outcome:
    if not data_dir.is_dir():
        return not_measured(f"{data_dir} is not here (the real files are not shipped)")
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        repo = Path(tmp) / "repo"
        commit = export(root, repo)
        for link, source in LAYOUT.items():
            (repo / "data/external" / link).parent.mkdir(parents=True, exist_ok=True)
            (repo / "data/external" / link).symlink_to(data_dir / source)
        env = subprocess_env(PYTHONPATH=str(repo / "src"), TOKENIZERS_PARALLELISM=None)
        subprocess.run(["scratchlm", "preset", "real-cpu"], cwd=repo, env=env, check=True, capture_output=True)
        start = time.perf_counter()
        try:
            proc = subprocess.run(["snakemake", "--cores", "all"], cwd=repo, env=env, capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return not_measured(f"`snakemake --cores all` ran past the {timeout_s:g} s limit")
        seconds = round(time.perf_counter() - start, 1)
        if proc.returncode != 0:
            return not_measured(f"`snakemake --cores all` exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        conll, conll_gain = held_out_figures(repo, "conll2003", "entity_f1")
        sst2, sst2_gain = held_out_figures(repo, "sst2", "accuracy")
        report = (repo / "results/report.md").read_text(encoding="utf-8")
    summary = dict(zip(KEYS, (seconds, conll, conll_gain, sst2, sst2_gain)))
    rows = [Row("real-cpu preset `snakemake --cores all` from the raw files", fmt(seconds / 60, " min", 1), "—",
                None, f"≤ {GOAL_S / 60:g} min", at_most(seconds, GOAL_S), KEYS[0])]
    names = {"real_conll_val_f1": "CoNLL-2003 validation entity F1 (as test.txt), best pretrained method (mean, seeds)",
             "real_conll_gain": "CoNLL-2003 validation F1, pretrained full minus scratch (mean of seed pairs)",
             "real_sst2_val_acc": "SST-2 GLUE dev accuracy (our test split), best pretrained method (mean over seeds)",
             "real_sst2_gain": "SST-2 GLUE dev accuracy, pretrained full minus scratch (mean of seed pairs)"}
    for key, goal in GOALS.items():
        rows.append(Row(names[key], fmt(None if summary[key] is None else 100 * summary[key], " %"), "—", None,
                        f"≥ {100 * goal:g}", at_least(summary[key], goal), key))
    return Outcome(summary=summary, rows=rows,
                   detail={"commit": commit, "seconds": seconds, "report_bytes": len(report)})
