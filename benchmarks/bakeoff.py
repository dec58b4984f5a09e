"""The bake-off that picks the real-data preset's language model: a GRU, an LSTM and a BERT
pretrained for the same minutes on the same cores and corpus (benchmarks/bakeoff.yaml sets
each model's steps from its tokens/s measured on one machine), adapted and fine-tuned by the same
protocol, each at the rate its validation chose; compared on validation, where the choice is made.

Reads a finished run of that preset and writes <out>/<task>.json (each model's pretraining
minutes, tokens and perplexity; each arm's rate and per-seed validation and test scores; the
differences between models with 95% intervals), <out>/<task>.png (validation score against
pretraining minutes, the scratch control at 0) and <out>/bakeoff.png (that figure for every task
<out> holds a JSON file of):

    python -m benchmarks.bakeoff --apply --task sst2   # the real-cpu preset, bakeoff.yaml, bakeoff.sst2.yaml
    snakemake --cores all
    python -m benchmarks.bakeoff --repo . --task sst2 --out docs/bakeoff

One task a run, each over the committed params.yaml (`git checkout params.yaml` between them: the
LMs are the same, so the second run only adapts and fine-tunes): the models' fine-tuning rates
(finetune.overrides) are chosen per task.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

from scratchlm import figures, presets
from scratchlm.errors import ScratchError
from scratchlm.metrics import mean_std
from scratchlm.params import load

LEVEL = 0.95
OVERLAY = Path(__file__).with_name("bakeoff.yaml")
TASKS = ("sst2", "conll2003")  # each has its overlay, bakeoff.<task>.yaml


def task_overlay(task: str) -> Path:
    return OVERLAY.with_name(f"bakeoff.{task}.yaml")


def apply(task: str, params_file: str = "params.yaml") -> None:
    """The bake-off's params for one task: the real-cpu preset, this experiment's overlay, then
    the task's (the other task off, each model's rate on this one)."""
    if task not in TASKS:
        raise ScratchError(f"the bake-off has no task {task!r} (its tasks: {', '.join(TASKS)})")
    presets.apply("real-cpu", params_file)
    presets.apply("bake-off", params_file, file=OVERLAY)
    presets.apply(f"bake-off {task}", params_file, file=task_overlay(task))


def seed_scores(plots: Path, metric: str) -> dict[int, float]:
    """Each seed's selected validation score: the best point of its curve (the run keeps the
    checkpoint with the best validation metric, higher being better for the task metrics)."""
    found = {}
    for folder in sorted(plots.glob("seed*")):
        _, values = figures.read_curve(folder / "eval" / f"{metric}.tsv")
        if values:
            found[int(folder.name.removeprefix("seed"))] = max(values)
    return found


def scores_on_test(details: Path, metric: str) -> dict[int, float]:
    """Each seed's score on the test split (the evaluate stage's details file)."""
    if not details.exists():
        return {}
    return {int(seed): m[metric] for seed, m in json.loads(details.read_text())["seeds"].items()}


def pretraining(repo: Path, model: str, seed: int) -> dict:
    """What the model's pretraining had: minutes of wall time (the stage's own, on all the cores
    it was given), tokens seen, steps, validation perplexity and its objective."""
    where = f"{model}/seed{seed}.json"
    metrics = json.loads((repo / "results/pretrain" / model / f"seed{seed}" / "metrics.json").read_text())
    timing = json.loads((repo / "results/timing/pretrain" / where).read_text())
    return {"minutes": round(timing["seconds"] / 60, 2), "tokens": metrics["tokens"], "steps": metrics["steps"],
            "tokens_per_second": timing.get("tokens_per_second"), "objective": metrics["objective"],
            "val_perplexity": metrics["val_perplexity"], "unigram_perplexity": metrics["unigram_perplexity"],
            "parameters": metrics["parameters"]}


def arm(repo: Path, task: str, model: str, run: str, metric: str) -> dict | None:
    """One fine-tuning arm: its rate, steps, seeds' validation and test scores; None if not run."""
    folder = repo / "results/finetune" / task / model / run
    if not (folder / "metrics.json").exists():
        return None
    summary = json.loads((folder / "metrics.json").read_text())
    val = seed_scores(folder / "plots", metric)
    test = scores_on_test(repo / "results/details" / task / model / f"{run}.json", metric)
    return {"lr": summary["lr"], "steps": summary["steps"], "selected_epoch": summary["selected_epoch"],
            "improving_seeds": summary["improving_seeds"], "val_seeds": val, "test_seeds": test,
            **describe(list(val.values()), "val"), **describe(list(test.values()), "test")}


def describe(values: list[float], prefix: str) -> dict:
    if not values:
        return {}
    mean, std = mean_std(values)
    return {f"{prefix}_mean": round(mean, 4), f"{prefix}_std": round(std, 4)}


def difference(a: list[float], b: list[float]) -> dict:
    """mean(a) - mean(b) with Welch's 95% t-interval (different LMs: the seeds are not paired)."""
    from scipy import stats

    diff = statistics.mean(a) - statistics.mean(b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = (va + vb) ** 0.5
    if se == 0:
        return {"difference": round(diff, 4), "low": round(diff, 4), "high": round(diff, 4)}
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + LEVEL / 2, dof) * se
    return {"difference": round(diff, 4), "low": round(diff - half, 4), "high": round(diff + half, 4)}


def collect(repo: Path, task: str) -> dict:
    params = load(repo / "params.yaml")
    if task not in params["tasks"]:
        raise ScratchError(f"task {task!r} is not in {repo / 'params.yaml'} (its tasks: {', '.join(params['tasks'])})")
    metric, seed = params["tasks"][task]["metric"], params["pretrain"]["seeds"][0]
    models = {}
    for model in params["pretrain"]["models"]:
        if not (repo / "results/pretrain" / model / f"seed{seed}" / "metrics.json").exists():
            raise ScratchError(f"{repo} has no pretraining results for {model} (seed {seed}): run "
                               "`snakemake --cores all` there first")
        arms = {run: found for run in ("full", "scratch") if (found := arm(repo, task, model, run, metric))}
        models[model] = {"pretraining": pretraining(repo, model, seed), **arms}
    ranked = [m for m in models if "full" in models[m] and len(models[m]["full"]["val_seeds"]) > 1]
    pairs = {f"{a} - {b}": difference(list(models[a]["full"]["val_seeds"].values()),
                                      list(models[b]["full"]["val_seeds"].values()))
             for a, b in itertools.combinations(ranked, 2)}
    return {"task": task, "metric": metric, "models": models, "validation_differences": pairs}


def rows(found: dict) -> list[tuple]:
    """The figure's points: each model's `full` at its pretraining minutes, `scratch` at 0."""
    out = []
    for model, m in found["models"].items():
        for run, minutes in (("scratch", 0.0), ("full", m["pretraining"]["minutes"])):
            if run in m and "val_mean" in m[run]:
                out.append((found["task"], model, minutes, m[run]["val_mean"], m[run]["val_std"]))
    return out


def table(found: dict) -> str:
    lines = ["| model | pretraining minutes | tokens | perplexity (unigram) | `full` rate | `full` validation "
             "| `full` test | `scratch` validation |", "|---|---|---|---|---|---|---|---|"]
    for model, m in found["models"].items():
        p, full, scratch = m["pretraining"], m.get("full", {}), m.get("scratch", {})
        lines.append(f"| {model} | {p['minutes']:.1f} | {p['tokens'] / 1e6:.2f}M | {p['val_perplexity']:.0f} "
                     f"({p['unigram_perplexity']:.0f}) | {full.get('lr', '—')} | {_cell(full, 'val')} | "
                     f"{_cell(full, 'test')} | {_cell(scratch, 'val')} |")
    return "\n".join(lines)


def _cell(found: dict, split: str) -> str:
    """mean ± sd in points, and the number of seeds."""
    if f"{split}_mean" not in found:
        return "—"
    return (f"{100 * found[f'{split}_mean']:.2f} ± {100 * found[f'{split}_std']:.2f} "
            f"({len(found[f'{split}_seeds'])} seeds)")


def combined_figure(out: Path) -> Path:
    """One figure, a panel per task whose results `out` holds (<task>.json)."""
    found = [json.loads((out / f"{task}.json").read_text()) for task in TASKS if (out / f"{task}.json").exists()]
    return figures.score_by_budget([r for f in found for r in rows(f)], {f["task"]: f["metric"] for f in found},
                                   out / "bakeoff.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bakeoff", description=__doc__.splitlines()[0])
    parser.add_argument("--apply", action="store_true", help="merge the real-cpu preset, then "
                        "benchmarks/bakeoff.yaml and the task's bakeoff.<task>.yaml into ./params.yaml, and stop")
    parser.add_argument("--repo", type=Path, default=Path("."), help="a finished run of the bake-off")
    parser.add_argument("--task", help=f"the task to set up or read ({', '.join(TASKS)})")
    parser.add_argument("--out", type=Path, default=Path("docs/bakeoff"))
    args = parser.parse_args(argv)
    if not args.task:
        parser.error("--task is needed, to set a run up (--apply) or to read one")
    try:
        if args.apply:
            return apply(args.task)
        found = collect(args.repo, args.task)
    except ScratchError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.task}.json").write_text(json.dumps(found, indent=1) + "\n")
    figures.score_by_budget(rows(found), {args.task: found["metric"]}, args.out / f"{args.task}.png")
    combined_figure(args.out)
    print(table(found))
    for pair, d in found["validation_differences"].items():
        print(f"{pair}: {100 * d['difference']:+.2f} points (95% CI {100 * d['low']:+.2f} to {100 * d['high']:+.2f})")


if __name__ == "__main__":
    main()
