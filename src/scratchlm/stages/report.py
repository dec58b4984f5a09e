"""Stage `report`: results/report.md, a self-contained results/report.html (figures embedded, no
external URL) and the figures in results/figures/, from the files of the runs params declare
(never a glob: a stale file from a removed run cannot sneak into a table)."""

from __future__ import annotations

import base64
import functools
import json
import platform
import re
import statistics
import subprocess
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import bootstrap, compare, dag, figures, metrics, paths
from .. import params as params_mod
from ..atomic import atomic_path, read_json, write_json, write_text
from ..dag import Run, runs
from ..errors import ScratchError
from ..kinds import TASK_METRICS
from ..methods import CONTROL, FULL, method
from ..published import BENCHMARKS

REPORT = Path(paths.REPORT)
HTML = Path(paths.REPORT_HTML)
FIGURES = Path(paths.FIGURES)
PACKAGES = ["torch", "transformers", "datasets", "tokenizers", "peft", "seqeval", "snakemake", "dvc", "dvclive",
            "scikit-learn"]


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _main(params: dict, task: str) -> tuple[str, str]:
    """(main, secondary) test metric of a task."""
    return TASK_METRICS[params["tasks"][task]["type"]]


def _control(run: Run) -> Run:
    """The run's control: the same run from random weights (from the adapted model's config)."""
    return run._replace(method=CONTROL.name, general=False)


def _out(template: str, run: Run) -> Path:
    return paths.path(template, task=run.task, model=run.model, run=run.name)


class Figures:
    """Where a figure is drawn (the stage's temporary folder) and how the report links it (its
    final place, results/figures/, relative to the report)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / name

    @staticmethod
    def link(name: str, alt: str) -> str:
        return f"![{alt}]({FIGURES.relative_to(REPORT.parent).as_posix()}/{name})"


def benchmark(spec: dict) -> str | None:
    """Which published benchmark a dataset spec is: declared, or recognised from a hub id."""
    if spec.get("benchmark"):
        return spec["benchmark"]
    path = spec.get("path", "").lower() if spec["source"] == "hub" else ""
    return next((name for name in BENCHMARKS if name in path.replace("-", "")), None)


# ---------------------------------------------------------------- a run's results

class Result(NamedTuple):
    """A run's test results: the metrics file (means and spread over seeds) and each seed's scores."""
    metrics: dict
    seeds: dict[str, dict]

    def values(self, name: str) -> list[float]:
        return [scores[name] for scores in self.seeds.values()]

    def score(self, name: str) -> str:
        """`91.23 ± 0.45` (%), and a warning when some seed predicted one class or no entity."""
        text = f"{_pct(self.metrics[name])} ± {_pct(self.metrics[f'{name}_std'])}"
        if self.metrics["collapsed_seeds"]:
            text += f" ⚠ {self.metrics['collapsed_seeds']}/{self.metrics['seeds']} seeds collapsed"
        if self.metrics.get("improving_seeds"):  # absent from runs made before the flag existed
            text += f" ↗ {self.metrics['improving_seeds']}/{self.metrics['seeds']} seeds stopped while improving"
        return text


def results(params: dict) -> dict[Run, Result]:
    return {run: Result(read_json(_out(paths.METRICS, run)), read_json(_out(paths.DETAILS, run))["seeds"])
            for run in runs(params)}


def _test_counts(run: Run, metric: str) -> dict:
    """{seed: per-example counts of `metric`} from the run's test predictions (bootstrap.METRICS)."""
    counts = bootstrap.METRICS[metric][0]
    by_seed: dict = {}
    for line in _out(paths.PREDICTIONS, run).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by_seed.setdefault(row["seed"], []).append(row)
    found = {}
    for seed, rows in by_seed.items():
        rows.sort(key=lambda r: r["index"])
        found[seed] = (counts([r["tags"] for r in rows], [r["predicted"] for r in rows]) if "tags" in rows[0]
                       else counts([r["label"] for r in rows], [r["prediction"] for r in rows]))
    return found


@functools.cache  # the headline and the gains table ask for the same pairs: read and resample once
def interval(run: Run, control: Run, metric: str) -> bootstrap.Interval | None:
    """The paired bootstrap interval of run minus control over the test examples and the seeds
    both ran (None for a metric without per-example counts)."""
    return pooled_interval(((run, control),), metric)


@functools.cache
def pooled_interval(pairs: tuple[tuple[Run, Run], ...], metric: str) -> bootstrap.Interval | None:
    """The interval of the mean gain of several (run, control) pairs on one test set (the models
    of a task): their seeds pooled, each model's seed paired with its control's, resampled within
    their model, and those that fine-tuned different LMs (pretrain.seeds) LM by LM."""
    if metric not in bootstrap.METRICS:
        return None
    a, b, lms = [], [], []
    for run, control in pairs:
        mine, theirs = _test_counts(run, metric), _test_counts(control, metric)
        seeds = sorted(set(mine) & set(theirs))
        started = read_json(_out(paths.FINETUNE_METRICS, run))["lm_seeds"]
        a += [mine[s] for s in seeds]
        b += [theirs[s] for s in seeds]
        lms += [(run.model, started[str(s)]) for s in seeds]
    return bootstrap.paired(np.stack(a), np.stack(b), bootstrap.METRICS[metric][1], groups=lms)


def _gain_words(run: Run, control: Run, metric: str, found: dict) -> str:
    """`+1.09 (95% CI +0.52 to +1.66)` in points, or the per-seed mean ± std without predictions."""
    ci = interval(run, control, metric)
    if ci is not None:
        return ci.words()
    g, s = paired_gain(found[run], found[control], metric)
    return f"{100 * g:+.2f} ± {100 * s:.2f} points"


def paired_gain(run: Result, control: Result, metric: str) -> tuple[float, float]:
    """Mean and spread of the per-seed differences (the same seed draws the same data order and
    label share for both, so the pairs are like for like)."""
    diffs = [run.seeds[s][metric] - control.seeds[s][metric] for s in run.seeds if s in control.seeds]
    return metrics.mean_std(diffs)


# ---------------------------------------------------------------- sections

def headline(params: dict, found: dict[Run, Result]) -> tuple[str, dict]:
    """What the run shows, task by task, in a few sentences computed from its results; and the
    same few numbers for results/headline.json, the metric file of `dvc exp show`'s narrow view:
    per task, the pretrained `full` runs' main test metric and their mean gain over their scratch
    controls with its 95% interval (means over models and seeds; no run is picked by its test
    score)."""
    lines, numbers = [], {}
    for task in params["tasks"]:
        main = _main(params, task)[0]
        mine = {run: r for run, r in found.items() if run.task == task}
        if not mine:
            continue
        best_run = max(mine, key=lambda run: mine[run].metrics[main])
        full = [run for run in mine if (run.method, run.fraction, run.general, run.shots) == (FULL.name, 1.0, False, 0)]
        if full:
            numbers.setdefault(task, {})[main] = round(sum(mine[run].metrics[main] for run in full) / len(full), 4)
        pairs = [(run, *paired_gain(mine[run], mine[_control(run)], main)) for run in full if _control(run) in mine]
        text = f"- **{task}** ({main}): best run {best_run.model}/{best_run.name}, {mine[best_run].score(main)}."
        if pairs:
            numbers.setdefault(task, {})["gain"] = round(sum(g for _, g, _ in pairs) / len(pairs), 4)
            ci = pooled_interval(tuple((run, _control(run)) for run, _, _ in pairs), main)
            if ci is not None:  # its 95% interval (paired bootstrap over test examples and seeds)
                numbers[task].update(gain_low=round(ci.low, 4), gain_high=round(ci.high, 4))
            text += " Pretrained `full` against `scratch`: " + ", ".join(
                f"{run.model} {_gain_words(run, _control(run), main, mine)}" for run, _, _ in pairs) + "."
        few = [(run, r) for run, r in mine.items() if run.fraction < 1.0 and run.method == FULL.name]
        for run, r in few:
            control = mine.get(_control(run))
            if control:
                text += (f" With {100 * run.fraction:g}% of the labels, {run.model} pretrained {r.score(main)} "
                         f"against scratch {control.score(main)} ({_gain_words(run, _control(run), main, mine)}).")
        collapsed = [f"{run.model}/{run.name}" for run, r in mine.items() if r.metrics["collapsed_seeds"]]
        if collapsed:
            text += (f" ⚠ Some seed of {', '.join(collapsed)} predicted one class for (nearly) every example, "
                     "or no entity.")
        rising = [f"{run.model}/{run.name}" for run, r in mine.items() if r.metrics.get("improving_seeds")]
        if rising:
            text += (f" ↗ Some seed of {', '.join(rising)} stopped while its validation score still rose: its "
                     "budget, not the method, may limit it.")
        lines.append(text)
    return "\n".join(lines), numbers


def banner(params: dict) -> str:
    """Which preset made the run; for a smoke preset, that its numbers test the plumbing only."""
    report = params["report"]
    if report["smoke"]:
        return (f"> **A smoke run** (the `{report['preset'] or 'tiny'}` preset): the whole DAG on toy sizes and a "
                f"few steps. Its numbers show that every stage ran, not what the models can do.\n\n")
    return f"> Made with the `{report['preset']}` preset.\n\n" if report["preset"] else ""

def summary(params: dict, found: dict[Run, Result]) -> str:
    rows = []
    for run, r in found.items():
        main, second = _main(params, run.task)
        rows.append([run.task, run.model, run.name, f"{main} {r.score(main)}",
                     ", ".join(_pct(v) for v in r.values(main)), f"{second} {_pct(r.metrics[second])}",
                     f"{r.metrics['train_examples']:,}", f"{100 * r.metrics['trainable_fraction']:.1f}%",
                     *((f"{r.metrics['lr']:g}", f"{r.metrics['selected_epoch']:g}") if r.metrics["train_examples"]
                       else ("—", "—"))])  # a zero-shot prompt trains nothing
    return _table(["task", "model", "run", "test metric % (mean ± std over seeds)", "per seed", "second metric %",
                   "train examples", "trained share", "lr", "selected at epoch (mean)"], rows)


def _stands_against(ref, run: Run) -> bool:
    """Whether our run is the kind of run a published reference is (see published.Reference)."""
    if ref.ours == "pretrained":
        return method(run.method).pretrained and run.fraction == 1.0 and run.shots == 0
    return run.method == ref.ours and run.fraction == 1.0 and run.shots == ref.shots and not run.general


def references(params: dict, found: dict[Run, Result]) -> str:
    """Literature numbers on the same benchmark, each beside the run of ours it stands against (the
    scratch control beside from-scratch figures, our best pretrained run beside pretrained ones);
    nothing for other data."""
    rows = []
    for task, spec in params["tasks"].items():
        bench = benchmark(params["data"]["datasets"][spec["dataset"]])
        main = _main(params, task)[0]
        if not bench:
            continue
        for ref in BENCHMARKS[bench]:
            ours = [run for run in found if run.task == task and _stands_against(ref, run)]
            if ours:
                run = max(ours, key=lambda run: found[run].metrics[main])
                rows.append([task, ref.who, f"{ref.metric} {_pct(ref.value)} ({ref.split})",
                             f"{run.model}/{run.name}: {found[run].score(main)}"])
    if not rows:
        return ""
    return ("\n\nPublished numbers, each beside the run of ours it stands against (from-scratch figures beside our "
            "`scratch` control, pretrained ones beside our best pretrained run). Note the split: our test split may "
            "be the benchmark's dev set, and published models are larger and trained longer:\n\n"
            + _table(["task", "published", "their score", "ours (mean ± std over seeds)"], rows))


def pretraining_gain(params: dict, found: dict[Run, Result], figs: Figures) -> str:
    rows, bars = [], []
    for run, r in found.items():
        control = found.get(_control(run))
        if method(run.method).pretrained and method(run.method).trained and control:
            main = _main(params, run.task)[0]
            gain, spread = paired_gain(r, control, main)
            ci = interval(run, _control(run), main)
            rows.append([run.task, run.model, run.name, main, control.score(main), r.score(main),
                         f"{100 * gain:+.2f} ± {100 * spread:.2f}",
                         f"{100 * ci.low:+.2f} to {100 * ci.high:+.2f}" + ("" if ci.shown else " (not shown)")
                         if ci else "–"])
            # the bar and its interval: the bootstrap's, or ± the per-seed spread for a metric without one
            bar = (ci.gain, ci.low, ci.high) if ci else (gain, gain - spread, gain + spread)
            bars.append((run.task, run.model, run.name, *(100 * v for v in bar)))
    if not rows:
        return "_No `scratch` control among the methods: add it to finetune.methods to see what pretraining buys._"
    figures.gains(bars, figs.path("pretraining_gain.png"))
    return ("Test split. The gain is the mean of the per-seed differences (± their std); the interval is a "
            "paired bootstrap over the test examples and the seeds (95%), and a gain whose interval covers "
            "zero is not shown by this run.\n\n"
            + _table(["task", "model", "run", "metric", "scratch %", "pretrained %", "gain (points, per-seed pairs)",
                      "95% CI (points)"], rows)
            + "\n\n" + figs.link("pretraining_gain.png", "pretrained minus scratch, per run"))


def adaptation(params: dict, found: dict[Run, Result]) -> str:
    """ULMFiT's middle step: the LM's perplexity on each task's text before and after it, and
    the ablation runs fine-tuned from the general model beside the same runs from the adapted one."""
    rows = []
    for task in params["tasks"]:
        for model, seed in _lms(params):
            m = read_json(paths.path(paths.ADAPT_METRICS, task=task, model=model, seed=seed))
            rows.append([task, model, seed, "yes" if m["adapted"] else "no (passed through)",
                         m["val_perplexity_before"], m["val_perplexity"], m["steps"]])
    text = _table(["task", "model", "LM seed", "adapted", "perplexity on the task's validation text, general model",
                   "after adaptation", "steps"], rows)
    ablation = []
    for run, r in found.items():
        adapted = found.get(run._replace(general=False))
        if run.general and adapted:
            main = _main(params, run.task)[0]
            gain, spread = paired_gain(adapted, r, main)
            ablation.append([run.task, run.model, run.method, main, r.score(main), adapted.score(main),
                             f"{100 * gain:+.2f} ± {100 * spread:.2f}"])
    if ablation:
        text += ("\n\nWhat the adaptation step buys: the same run fine-tuned from the general and from the adapted "
                 "model (test, per-seed pairs).\n\n"
                 + _table(["task", "model", "method", "metric", "from the general model %", "from the adapted model %",
                           "gain (points)"], ablation))
    return text


def data_efficiency(params: dict, found: dict[Run, Result], figs: Figures) -> str:
    """The main test metric against the share of training labels, pretrained next to scratch."""
    eff = params["finetune"]["data_efficiency"]
    rows, points = [], []
    for run, r in sorted(found.items(), key=lambda kv: (kv[0].task, kv[0].model, kv[0].method, kv[0].fraction)):
        if run.model in eff["models"] and run.method in eff["methods"] and not (run.general or run.shots):
            main = _main(params, run.task)[0]
            rows.append([run.task, run.model, run.method, f"{100 * run.fraction:g}%",
                         f"{r.metrics['train_examples']:,}", f"{main} {r.score(main)}"])
            points.append((run.task, run.model, run.method, run.fraction, r.metrics[main], r.metrics[f"{main}_std"]))
    if not rows:
        return "_No data-efficiency runs: list models in finetune.data_efficiency to see the curve._"
    names = {t: _main(params, t)[0] for t in params["tasks"]}
    figures.data_efficiency(points, names, figs.path("data_efficiency.png"))
    text = (_table(["task", "model", "method", "labels used", "train examples", "test metric %"], rows)
            + "\n\n" + figs.link("data_efficiency.png", "data efficiency"))
    shares = share_gains(params, found)
    if shares:
        figures.share_gains(shares, names, figs.path("label_share_gain.png"))
        text += ("\n\nWhat pretraining buys at each share of the labels: pretrained `full` minus `scratch` on the "
                 "same rows, with its 95% interval (paired bootstrap over the test examples and the seeds).\n\n"
                 + _table(["task", "model", "labels used", "gain (points)", "95% CI (points)"],
                          [[t, m, f"{100 * f:g}%", f"{g:+.2f}", f"{lo:+.2f} to {hi:+.2f}"]
                           for t, m, f, g, lo, hi in shares])
                 + "\n\n" + figs.link("label_share_gain.png", "pretrained minus scratch against the share of labels"))
    return text


def share_gains(params: dict, found: dict[Run, Result]) -> list[tuple[str, str, float, float, float, float]]:
    """(task, model, share, gain, low, high) in points for every share of the labels at which a
    model's pretrained `full` run has its `scratch` control, the whole training set included."""
    eff, out = params["finetune"]["data_efficiency"], []
    for run in sorted(found, key=lambda r: (r.task, r.model, r.fraction)):
        if (run.task in eff["tasks"] and run.model in eff["models"] and run.method == FULL.name
                and not (run.general or run.shots) and _control(run) in found):
            main = _main(params, run.task)[0]
            ci = interval(run, _control(run), main)
            if ci is not None:
                out.append((run.task, run.model, run.fraction, 100 * ci.gain, 100 * ci.low, 100 * ci.high))
    return out


def label_counts(params: dict, found: dict[Run, Result], figs: Figures) -> str:
    """The prompt methods beside the heads at each number of labelled examples per class:
    `prompt` (zero-shot) is a flat line, pet, full and scratch are curves."""
    prompting = params["finetune"]["prompting"]
    rows, points = [], []
    for run, r in sorted(found.items(), key=lambda kv: (kv[0].task, kv[0].model, kv[0].method, kv[0].shots)):
        if not method(run.method).trained or run.shots:
            main = _main(params, run.task)[0]
            rows.append([run.task, run.model, run.method, run.shots or "0 (zero-shot)",
                         f"{r.metrics['train_examples']:,}", f"{main} {r.score(main)}"])
            points.append((f"{run.task}/{run.model}", run.method, run.shots, r.metrics[main],
                           r.metrics[f"{main}_std"]))
    if not rows:
        return "_No prompt runs: list tasks and models in finetune.prompting to see the curve._"
    calibration = {"batch": "batch calibration", "content-free": "content-free calibration",
                   "none": "uncalibrated"}[prompting["calibrate"]]
    table = _table(["task", "model", "method", "labels per class", "train examples", "test metric %"], rows)
    if not any(shots for _, _, shots, _, _ in points):  # a zero-shot line alone is no curve
        return (f"Zero-shot `prompt` ({calibration}), test split; no few-shot runs (list methods in "
                f"finetune.prompting.methods for the label-count curve).\n\n" + table)
    figures.label_counts(points, figs.path("label_counts.png"))
    return (f"Zero-shot `prompt` ({calibration}) and few-shot runs at k labelled examples "
            f"per class (validation: k per class too), test split.\n\n"
            + table + "\n\n" + figs.link("label_counts.png", "test metric against labels per class"))


def curve_panels(params: dict, found: dict) -> tuple[dict[str, dict[str, Path]], str]:
    """{panel title: {line label: DVCLive TSV}} for the learning curves: the language models'
    validation loss, then each task's main validation metric, the first seed of each run."""
    seed, several = params["finetune"]["seeds"][0], len(params["pretrain"]["seeds"]) > 1
    panels = {"pretraining: LM validation loss": {
        f"{m}/seed{s}" if several else m: paths.path(paths.PRETRAIN_PLOTS, model=m, seed=s) / "eval/loss.tsv"
        for m, s in _lms(params)}}
    for task, spec in params["tasks"].items():
        panels[f"{task}: validation {spec['metric']} (seed {seed})"] = {
            f"{r.model}/{r.name}": _out(paths.FINETUNE_PLOTS, r) / f"seed{seed}/eval/{spec['metric']}.tsv"
            for r in found if r.task == task}
    return panels, seed


def curve_rows(panels: dict[str, dict[str, Path]]) -> list[dict]:
    """The same curves as rows for DVC's plot of them (results/plots/curves.json)."""
    return [{"panel": title, "order": i, "run": label, "step": int(step), "value": value}
            for i, (title, curves) in enumerate(panels.items()) for label, tsv in curves.items()
            for step, value in zip(*figures.read_curve(tsv))]


def learning_curves(params: dict, found: dict, figs: Figures) -> str:
    panels, seed = curve_panels(params, found)
    figures.learning_curves(panels, figs.path("learning_curves.png"))
    return (f"Validation curves as training went, seed {seed} of each run (the selected checkpoint is its best "
            f"point); `dvc plots show` draws the same curves from `{paths.CURVES}`, and every seed's own under "
            "`results/finetune/*/*/*/plots/seed*` (`dvc plots show <folder>`), the language models' under "
            "`results/pretrain/*/seed*/plots`.\n\n" + figs.link("learning_curves.png", "learning curves"))


def confusion_matrices(params: dict, found: dict, figs: Figures) -> str:
    """Classification: every run; NER (tags): each model's first run, which is enough to see the pattern."""
    parts = []
    for task, spec in params["tasks"].items():
        chosen = [r for r in found if r.task == task]
        if spec["type"] == "token-classification":
            chosen = [next(r for r in chosen if r.model == m) for m in dict.fromkeys(r.model for r in chosen)]
        panels = {f"{r.model}/{r.name}": read_json(_out(paths.CONFUSION, r)) for r in chosen}
        if panels:
            figures.confusions(panels, figs.path(f"confusion_{task}.png"))
            parts.append(f"**{task}** (rows: actual, normalised)\n\n"
                         + figs.link(f"confusion_{task}.png", f"confusion matrices, {task}"))
    return "\n\n".join(parts)


def entity_types(found: dict[Run, Result]) -> str:
    """Entity-level F1 per type (seqeval, strict IOB2) for every NER run, mean over seeds."""
    ner = {run: r for run, r in found.items() if "per_type" in next(iter(r.seeds.values()))}
    if not ner:
        return "_No token-classification task._"
    types = sorted({t for r in ner.values() for scores in r.seeds.values() for t in scores["per_type"]})

    def f1(r: Result, t: str) -> str:
        return _pct(metrics.mean_std([s["per_type"].get(t, {}).get("f1-score", 0.0) for s in r.seeds.values()])[0])

    return _table(["task", "model", "run", *[f"{t} F1 %" for t in types]],
                  [[run.task, run.model, run.name, *[f1(r, t) for t in types]] for run, r in ner.items()])


def _lms(params: dict) -> list[tuple[str, str]]:
    """(model, pretraining seed) of every LM, in params' order."""
    return [(model, str(seed)) for model in params["pretrain"]["models"] for seed in params["pretrain"]["seeds"]]


def pretraining_seeds(params: dict, found: dict[Run, Result]) -> str:
    """What pretraining's own randomness moves: each run from a pretrained model scored per LM
    (the fine-tuning seeds that started from it), the spread of those means across the LMs beside
    the spread of the seeds within one LM."""
    lms = params["pretrain"]["seeds"]
    if len(lms) == 1:
        return (f"One LM per model (`pretrain.seeds: {lms}`): every fine-tuning seed starts from it, so each ± "
                "above is fine-tuning's spread alone. List several seeds to measure pretraining's.")
    rows = []
    for run, r in found.items():
        if not (method(run.method).pretrained and method(run.method).trained):
            continue
        main = _main(params, run.task)[0]
        started = read_json(_out(paths.FINETUNE_METRICS, run))["lm_seeds"]
        by_lm: dict = {}
        for seed, scores in r.seeds.items():
            by_lm.setdefault(started[seed], []).append(scores[main])
        means = [statistics.mean(v) for v in by_lm.values()]
        within = [statistics.stdev(v) for v in by_lm.values() if len(v) > 1]
        rows.append([run.task, run.model, run.name, main,
                     ", ".join(f"{lm}: {_pct(statistics.mean(v))} ({len(v)})" for lm, v in by_lm.items()),
                     _pct(statistics.stdev(means)) if len(means) > 1 else "–",
                     _pct(statistics.mean(within)) if within else "–"])
    return ("Test split, each run's main metric per LM (pretraining seed: mean over the fine-tuning seeds that "
            "started from it, their number in brackets); the standard deviation of those means across the LMs, "
            "and of the seeds within one LM (where an LM has two or more).\n\n"
            + _table(["task", "model", "run", "metric", "per LM %", "std across LMs", "std within an LM"], rows))


def language_models(params: dict) -> str:
    rows, samples = [], []
    for model, seed in _lms(params):
        m = read_json(paths.path(paths.PRETRAIN_METRICS, model=model, seed=seed))
        saturation = (f"{100 * m['state_saturation_init']:.0f}% → {100 * m['state_saturation']:.0f}%"
                      if "state_saturation" in m else "–")
        rows.append([model, seed, m["val_perplexity"], m["unigram_perplexity"], m["steps"], f"{m['tokens']:,}",
                     f"{m['parameters']:,}", saturation])
        if seed == str(params["pretrain"]["seeds"][0]):  # one LM's samples per model is enough to read
            samples.append(f"**{model}** (seed {seed})\n\n"
                           + paths.path(paths.PRETRAIN_SAMPLES, model=model, seed=seed).read_text(encoding="utf-8"))
    table = _table(["model", "seed", "validation perplexity", "unigram perplexity", "steps", "tokens seen",
                    "parameters", "saturated states (init → pretrained)"], rows)
    return (table + "\n\nSaturated states: the share of recurrent state values beyond ±0.9 on validation text, "
            "where tanh passes less than a fifth of the gradient.\n\nWhat each learned — causal LMs: sampled "
            "continuations (top-k 20); encoders: top guesses for the masked word:\n\n" + "\n".join(samples))


def across_revisions(params: dict) -> str:
    """This run beside the committed results of `report.compare` revisions and their DVC
    experiments (what `scratchlm compare` prints), read through dvc.api."""
    revs = params["report"]["compare"]
    if not revs:
        return "None asked for: list git revisions in `report.compare`."
    try:
        found = compare.rows(revs, workspace=True)
    except ScratchError as e:  # not a git/DVC repository (a bare copy), an unknown revision
        return f"Not available: {e}"
    for row in found:
        if row["revision"] == "workspace":
            row["revision"] = "this run"
    note = compare.presets_note(found)
    return ("Main test metric (%) of every run; a dash where a revision has no such run."
            + (f" ⚠ {note.removeprefix('compare: note: ')}." if note else "") + "\n\n" + compare.table(found))


def _throughput(t: dict) -> str:
    if "tokens_per_second" in t:
        return f"{t['tokens_per_second']:,.0f} tokens/s"
    if "examples_per_second" in t:
        return f"{t['examples_per_second']:,.0f} examples/s"
    return ""


def stage_times(params: dict) -> str:
    """Wall time, training time, throughput and peak memory of every stage run (results/timing/)."""
    rows, by_stage = [], {}
    for job in dag.jobs(params):
        if not dag.STAGES[job.stage].timed:
            continue
        t = read_json(paths.timing(job.stage, job.name))
        rows.append([job.stage, job.name or "", f"{t['seconds']:,.1f}", t.get("train_seconds", ""), _throughput(t),
                     f"{t['peak_rss_mb']:,.0f}", f"{t['peak_gpu_mb']:,.0f}" if "peak_gpu_mb" in t else ""])
        by_stage[job.stage] = by_stage.get(job.stage, 0.0) + t["seconds"]
    total = sum(by_stage.values())
    where = ", ".join(f"{stage} {seconds / 60:.1f} min ({100 * seconds / total:.0f}%)"
                      for stage, seconds in by_stage.items())
    header = ["stage", "run", "wall s", "train s", "throughput", "peak RSS MB", "peak GPU MB"]
    if not any(row[-1] for row in rows):  # no job used a GPU: no column for it
        header, rows = header[:-1], [row[:-1] for row in rows]
    return (_table(header, rows)
            + f"\n\nSum of the stage runs: {total / 60:.1f} min (the pipeline runs some at once): {where}. "
            "Training throughput counts the steps this process ran (a resumed run: since the resume).")


def per_class_report(run: Run, result: Result) -> str:
    """The first seed's, recomputed from its saved predictions, in the printed layouts of sklearn
    (classes) or seqeval and sklearn (entities, then tags)."""
    seed, scores = next(iter(result.seeds.items()))
    lines = [row for line in _out(paths.PREDICTIONS, run).read_text(encoding="utf-8").splitlines()
             if str((row := json.loads(line))["seed"]) == seed]
    if lines and "tags" in lines[0]:
        return metrics.entities_text([r["tags"] for r in lines], [r["predicted"] for r in lines])
    return metrics.classification_text([r["label"] for r in lines], [r["prediction"] for r in lines],
                                       list(scores["per_class"]))


def _source(spec: dict) -> str:
    if spec["source"] == "mix":
        return "mix of " + " + ".join(f"{part} ({_source(sub)})" for part, sub in spec["parts"].items())
    if spec["source"] == "synthetic":
        return f"synthetic/{spec['generator']}"
    if spec["source"] == "hub":
        return f"hub {spec['path']}" + (f" ({spec['name']})" if spec.get("name") else "")
    return "local " + spec["files"]["train"]


def datasets_section(params: dict) -> str:
    rows = []
    for name, spec in params["data"]["datasets"].items():
        s = read_json(paths.path(paths.DATA_STATS, dataset=name))
        leaks = [f"{s['overlap'][split]['exact']} / {s['overlap'][split]['contained']}"
                 for split in ("validation", "test")]
        rows.append([name, _source(spec), s["splits"]["train"], s["splits"]["validation"], s["splits"]["test"],
                     s["train"]["words_p50"], s["train"]["words_max"], *leaks, s["test_overlap_with_train"]])
    return ("Rows of validation and test also in train: the same text / inside a training text (whole words). "
            "Test overlap: the share of test texts (NER: entity names) seen in train.\n\n"
            + _table(["dataset", "source", "train", "validation", "test", "median words", "max words",
                      "validation in train", "test in train", "test overlap"], rows))


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


def build(params: dict, figs: Figures, found: dict[Run, Result], summary_text: str) -> str:
    details = "\n\n".join(f"**{r.task} / {r.model} / {r.name}** (seed {next(iter(res.seeds))})\n\n"
                          f"```\n{per_class_report(r, res)}```" for r, res in found.items())
    return "\n\n".join([
        f"# {params['report']['title']}\n\n{banner(params)}## What this run shows\n\n" + summary_text,
        "## Test results\n\nEvery row is one fine-tuning run under each seed of `finetune.seeds`, selected on "
        "validation, scored once on the test split (classification: accuracy and macro F1; NER: entity F1, seqeval "
        "strict IOB2, and token accuracy): mean ± standard deviation over the seeds, and each seed's value. ⚠ marks "
        "a run in which some seed predicted one class for every example or nearly (95% or more; NER: no entity "
        "at all); ↗ one in which some seed stopped while improving (its best validation score was its last "
        "evaluation, above the one two before).\n\n"
        + summary(params, found) + references(params, found),
        "## What pretraining bought\n\nEach run against its `scratch` control (same architecture, data and budget, "
        "random initialisation), on the task's main metric.\n\n" + pretraining_gain(params, found, figs),
        "## Adapting the language models to each task\n\n" + adaptation(params, found),
        "## Pretraining seeds\n\n" + pretraining_seeds(params, found),
        "## Across revisions and experiments\n\n" + across_revisions(params),
        "## Data efficiency\n\n" + data_efficiency(params, found, figs),
        "## Labels per class: prompts and heads\n\n" + label_counts(params, found, figs),
        "## Learning curves\n\n" + learning_curves(params, found, figs),
        "## Confusion matrices\n\n" + confusion_matrices(params, found, figs),
        "## NER: entity F1 per type\n\n" + entity_types(found),
        "## Language models\n\n" + language_models(params),
        "## Time and throughput\n\n" + stage_times(params),
        "## Per-class reports\n\n" + details,
        "## Datasets\n\n" + datasets_section(params),
        "## Environment\n\n" + environment(params),
    ]) + "\n"


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0;font-size:90%}th,td{border:1px solid #ccc;padding:3px 8px}"
         "th{background:#f3f3f3}pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:85%}"
         "img{max-width:100%}code{background:#f3f3f3}")


def to_html(markdown: str, title: str) -> str:
    """The Markdown report as one HTML file that opens offline: figures inlined as data URIs."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)

    def inline(m: re.Match) -> str:
        data = base64.b64encode((REPORT.parent / m.group(1)).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', inline, body)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}</body></html>\n")


def run(params: dict) -> None:
    found = results(params)
    summary_text, numbers = headline(params, found)
    with atomic_path(FIGURES, is_dir=True) as tmp:
        text = build(params, Figures(tmp), found, summary_text)
    write_text(REPORT, text)
    write_text(HTML, to_html(text, params["report"]["title"]))
    # by task, so DVC's columns are short (<task>.<metric>, <task>.gain): README's `dvc exp show` fits 120 columns
    write_json(paths.HEADLINE, numbers)
    write_json(paths.CURVES, curve_rows(curve_panels(params, found)[0]))
    print(f"report: wrote {REPORT}, {HTML}, {paths.HEADLINE}, {paths.CURVES} and {FIGURES}/")
