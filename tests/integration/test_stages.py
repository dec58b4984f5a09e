"""Every stage's `run()` in order on the tiny params, in-process, in a temp directory: the
artifacts each stage promises, and the properties that make them trustworthy."""

import copy
import json
import math
import re
from pathlib import Path

import pytest
from datasets import load_from_disk

from scratchlm import cli, dag, lm, params, paths
from scratchlm.atomic import read_json
from scratchlm.stages import data

pytestmark = pytest.mark.slow  # the module's fixture trains every model of the tiny preset


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_params):
    """The stages through the CLI (as both front ends call them), in-process."""
    import os

    import yaml

    here = os.getcwd()
    root = tmp_path_factory.mktemp("pipeline")
    os.chdir(root)
    try:
        p = copy.deepcopy(tiny_params)
        p["finetune"]["data_efficiency"] = {"tasks": ["sentiment"], "models": ["gru"], "methods": ["full"],
                                              "fractions": [0.5]}
        p["finetune"]["seeds"] = [1, 2]  # several seeds, as the demo has
        p["pretrain"]["seeds"] = [42, 43]  # and an LM for each: seed 1 fine-tunes LM 42, seed 2 LM 43
        p["adapt"]["ablation"] = {"models": ["gru"], "methods": ["full"]}
        p["tasks"]["ner"]["head"].update(char_filters=8, tagger_hidden=8, crf=True)  # every option of the head
        p["tasks"]["sentiment"]["method_overrides"] = {"scratch": {"lr": 0.0123}}  # the control's own rate
        p["finetune"]["prompting"].update(models=["gru", "bert"], shots=[4], methods=["pet", "full"],
                                          training={"max_steps": 6, "eval_steps": 3, "batch_size": 4})
        Path("params.yaml").write_text(yaml.safe_dump(p))
        for job in dag.jobs(p):  # in pipeline order
            cli.run([job.stage, *job.args()])
        yield root
    finally:
        os.chdir(here)


def out(kind: str, task: str, model: str, run: str) -> Path:
    template = {"metrics": paths.METRICS, "predictions": paths.PREDICTIONS, "confusion": paths.CONFUSION,
                "details": paths.DETAILS}[kind]
    return paths.path(template, task=task, model=model, run=run)


def test_pretrain_writes_model_metrics_curves_and_samples(pipeline, tiny_params):
    out = pipeline / "results/pretrain/gru/seed42"
    m = read_json(out / "metrics.json")
    assert math.isclose(m["val_perplexity"], math.exp(m["val_loss"]), rel_tol=1e-3)
    assert m["unigram_perplexity"] > 1 and m["steps"] == 20 and m["parameters"] > 0
    train = load_from_disk(str(pipeline / "data/blocks/corpus"))["train"]
    batch = tiny_params["pretrain"]["training"]["batch_size"]
    epoch = [min(batch, len(train) - i) for i in range(0, len(train), batch)]  # the last batch is short
    assert m["tokens"] == sum(epoch[s % len(epoch)] for s in range(20)) * len(train[0]["input_ids"])
    assert read_json(pipeline / "results/timing/pretrain/gru/seed42.json")["tokens_per_second"] > 0
    assert m["device"] == "cpu" and m["precision"] in ("fp32", "bf16")  # auto: bf16 where the CPU has it
    assert 0 <= m["state_saturation_init"] <= 1 and 0 <= m["state_saturation"] <= 1
    assert "state_saturation" not in read_json(pipeline / "results/pretrain/bert/seed42/metrics.json")
    assert (out / "plots/loss.tsv").read_text().startswith("step\tloss")
    assert (out / "plots/eval/loss.tsv").exists()
    assert (out / "samples.md").read_text().count("- **") == len(lm.PROMPTS)
    assert (pipeline / "models/pretrain/gru/seed42/model.safetensors").exists()
    assert (pipeline / "models/pretrain/gru/seed42/tokenizer.json").exists()
    assert not (pipeline / "checkpoints/pretrain/gru").exists()  # a finished run leaves no checkpoints


def test_finetune_and_evaluate_write_consistent_metrics(pipeline, tiny_params):
    from statistics import mean, stdev

    rates = {"full": tiny_params["finetune"]["training"]["lr"], "scratch": 0.0123}  # the method override
    for method in ("full", "scratch"):
        m = read_json(out("metrics", "sentiment", "gru", method))
        assert m["lr"] == rates[method] and m["selected_epoch"] > 0
        rows = [json.loads(line) for line in out("predictions", "sentiment", "gru", method).read_text().splitlines()]
        assert m["test_examples"] == 50 and m["seeds"] == 2 and len(rows) == 2 * 50
        per_seed = [sum(r["label"] == r["prediction"] for r in rows if r["seed"] == s) / 50 for s in (1, 2)]
        assert math.isclose(m["accuracy"], mean(per_seed), abs_tol=1e-6)
        assert math.isclose(m["accuracy_std"], stdev(per_seed), abs_tol=1e-6)
        details = read_json(out("details", "sentiment", "gru", method))["seeds"]
        assert [details[s]["accuracy"] for s in ("1", "2")] == pytest.approx(per_seed)
        assert all(math.isclose(sum(r["probabilities"]), 1, abs_tol=1e-3) for r in rows)
        assert m["train_examples"] == 200
        # gradual unfreezing runs over the first quarter of the steps: by the end every group trains
        assert m["trainable_fraction"] == 1.0
        confusion = read_json(out("confusion", "sentiment", "gru", method))
        assert len(confusion) == 2 * 50 and set(confusion[0]) == {"actual", "predicted"}
    for seed in (1, 2):
        assert (pipeline / f"models/finetune/sentiment/gru/full/seed{seed}/model.safetensors").exists()
        assert (pipeline / f"results/finetune/sentiment/gru/full/plots/seed{seed}/eval/accuracy.tsv").exists()
    assert not (pipeline / "checkpoints/finetune/sentiment/gru/full").exists()


def test_ner_predictions_are_per_word_and_rescore_to_the_metrics(pipeline):
    from scratchlm import metrics

    for model in ("gru", "bert"):
        m = read_json(out("metrics", "ner", model, "full"))
        rows = [json.loads(line) for line in out("predictions", "ner", model, "full").read_text().splitlines()]
        assert m["test_examples"] == 30 and len(rows) == 2 * 30
        assert all(len(r["words"]) == len(r["tags"]) == len(r["predicted"]) for r in rows)
        details = read_json(out("details", "ner", model, "full"))["seeds"]
        for seed in (1, 2):
            mine = [r for r in rows if r["seed"] == seed]
            again = metrics.entities([r["tags"] for r in mine], [r["predicted"] for r in mine])
            assert math.isclose(again["entity_f1"], details[str(seed)]["entity_f1"])
            assert set(details[str(seed)]["per_type"]) <= {"PER", "ORG", "LOC", "MISC"}
        assert all(isinstance(v, (int, float)) for v in m.values())  # scalars only: dvc metrics diff reads them


def test_adapt_trains_on_the_task_text_and_the_ablation_starts_from_the_general_model(pipeline):
    from safetensors.torch import load_file

    m = read_json(pipeline / "results/adapt/ner/gru/seed42/metrics.json")
    assert m["adapted"] and m["steps"] == 10 and m["train_blocks"] > 0 and m["val_blocks"] > 0
    assert m["val_perplexity_before"] > 1 and m["val_perplexity"] > 1
    curve = (pipeline / "results/adapt/ner/gru/seed42/plots/eval/loss.tsv").read_text().splitlines()
    assert curve[0] == "step\tloss" and curve[1].startswith("0\t") and len(curve) > 2  # from the general model on
    pre, adapted = (load_file(pipeline / f"models/{p}/seed42/model.safetensors")
                    for p in ("pretrain/gru", "adapt/ner/gru"))
    assert any(not pre[k].equal(adapted[k]) for k in pre)
    general = read_json(out("metrics", "ner", "gru", "full-general"))
    assert general["seeds"] == 2 and general["train_examples"] == read_json(out("metrics", "ner", "gru", "full"))[
        "train_examples"]
    text = (pipeline / "results/report.md").read_text()
    assert "## Adapting the language models to each task" in text and "What the adaptation step buys" in text


def test_prompt_and_pet_runs_write_what_every_run_writes_and_reload_through_the_auto_classes(pipeline):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    for model, auto in (("gru", AutoModelForCausalLM), ("bert", AutoModelForMaskedLM)):
        for run in ("prompt", "pet-4shot", "full-4shot"):
            m = read_json(out("metrics", "sentiment", model, run))
            assert m["seeds"] == 2 and m["test_examples"] == 50 and 0 <= m["accuracy"] <= 1
            rows = [json.loads(line) for line in out("predictions", "sentiment", model, run).read_text().splitlines()]
            assert len(rows) == 100 and all(abs(sum(r["probabilities"]) - 1) < 1e-3 for r in rows)
        assert read_json(out("metrics", "sentiment", model, "prompt"))["train_examples"] == 0
        pet = read_json(out("metrics", "sentiment", model, "pet-4shot"))
        assert pet["train_examples"] == 8 and pet["trainable_fraction"] == 1.0  # the LM itself: no new head
        lm = auto.from_pretrained(pipeline / f"models/finetune/sentiment/{model}/pet-4shot/seed1")
        assert lm.config.prompt["verbalizers"] == {"negative": ["terrible"], "positive": ["great"]}
    text = (pipeline / "results/report.md").read_text()
    assert "## Labels per class: prompts and heads" in text and "(figures/label_counts.png)" in text


def test_lora_run_trains_a_small_share_and_keeps_its_adapter(pipeline):
    for task in ("sentiment", "ner"):
        m = read_json(out("metrics", task, "bert", "lora"))
        assert 0 < m["trainable_fraction"] < read_json(out("metrics", task, "bert", "full"))["trainable_fraction"]
        assert (pipeline / f"models/finetune/{task}/bert/lora/seed1/adapter/adapter_config.json").exists()


def test_fraction_run_trains_on_its_share_of_the_labels(pipeline):
    m = read_json(out("metrics", "sentiment", "gru", "full-0.5"))
    assert m["train_examples"] == 100 and m["test_examples"] == 50


def test_scratch_control_does_not_start_from_pretrained_weights(pipeline):
    import torch
    from safetensors.torch import load_file

    pre = load_file(pipeline / "models/pretrain/gru/seed42/model.safetensors")
    full = load_file(pipeline / "models/finetune/sentiment/gru/full/seed1/model.safetensors")
    scratch = load_file(pipeline / "models/finetune/sentiment/gru/scratch/seed1/model.safetensors")
    key = "model.rnn.weight_hh_l0"
    # 20 small steps move weights a little: full stays near the pretrained ones, scratch does not
    assert torch.dist(full[key], pre[key]) < torch.dist(scratch[key], pre[key])


def test_each_fine_tuning_seed_starts_from_its_own_lm_and_the_report_splits_the_spread(pipeline):
    """pretrain.seeds [42, 43], finetune.seeds [1, 2]: seed 1 fine-tunes LM 42, seed 2 LM 43 (each
    adapted to the task), and the report sets the spread across LMs beside the spread within one."""
    from safetensors.torch import load_file

    assert read_json(pipeline / "results/finetune/sentiment/gru/full/metrics.json")["lm_seeds"] == {"1": 42, "2": 43}
    lms = [load_file(pipeline / f"models/adapt/sentiment/gru/seed{s}/model.safetensors") for s in (42, 43)]
    key = "model.rnn.weight_hh_l0"
    assert not lms[0][key].equal(lms[1][key])  # two LMs, not one written twice
    text = (pipeline / "results/report.md").read_text()
    section = text.split("## Pretraining seeds\n\n", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"\| sentiment \| gru \| full \| accuracy \| 42: [\d.]+ \(1\), 43: [\d.]+ \(1\) \| [\d.]+ \| – \|",
                     section), section
    models = text.split("## Language models\n\n", 1)[1]
    assert "| gru | 42 |" in models and "| gru | 43 |" in models and "| bert | 43 |" in models
    curves = {row["run"] for row in read_json(pipeline / "results/plots/curves.json")
              if row["panel"].startswith("pretraining")}
    assert curves == {"gru/seed42", "gru/seed43", "bert/seed42", "bert/seed43"}


def test_report_lists_every_run(pipeline):
    text = (pipeline / "results/report.md").read_text()
    for run in ("sentiment | gru | full", "sentiment | gru | scratch", "ner | bert | lora",
                "sentiment | gru | full-0.5"):
        assert f"| {run} |" in text
    assert "What pretraining bought" in text and "precision    recall  f1-score" in text
    assert "## NER: entity F1 per type" in text and "| 50% |" in text
    # a smoke preset says so on the report itself, and the headline sums the run up from its numbers
    assert "> **A smoke run** (the `tiny` preset)" in text
    shows = text.split("## What this run shows\n\n", 1)[1].split("\n## ", 1)[0]
    # one pair per model: the k-shot `full` runs have their own curve, not a place here
    pairs = re.search(r"\*\*sentiment\*\* \(accuracy\): best run .*?`full` against `scratch`: (.*?)\.$", shows,
                      flags=re.M)
    assert pairs, shows
    # each with its paired bootstrap interval, worded by it
    models = re.findall(r"(\w+) [+-][\d.]+ points \(95% CI [+-][\d.]+ to [+-][\d.]+(?:; not distinguishable from "
                        r"zero)?\)", pairs.group(1))
    assert sorted(models) == ["bert", "gru"], shows
    headline = read_json(pipeline / "results/headline.json")  # by task: DVC's columns <task>.<key>
    assert headline.keys() == {"sentiment", "ner"}
    interval = {"gain", "gain_low", "gain_high"}  # the mean gain over the models and its 95% interval
    assert headline["ner"].keys() == {"entity_f1", *interval}
    assert headline["sentiment"].keys() == {"accuracy", *interval}
    assert all(h["gain_low"] <= h["gain_high"] for h in headline.values())
    # and DVC's plots are the ones a person reads: the report's figures and one chart of every curve
    curves = read_json(pipeline / "results/plots/curves.json")
    panels = {row["panel"] for row in curves}
    first = next(iter(read_json(pipeline / "results/details/ner/gru/full.json")["seeds"]))  # finetune.seeds[0]
    assert panels == {"pretraining: LM validation loss", f"sentiment: validation accuracy (seed {first})",
                      f"ner: validation entity_f1 (seed {first})"}, panels
    assert {row["run"] for row in curves if row["panel"].startswith("ner")} >= {"gru/full", "gru/scratch", "bert/lora"}


def test_html_report_is_self_contained(pipeline):
    html = (pipeline / "results/report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    assert "http://" not in html and "https://" not in html  # opens offline: no CDN, no remote image
    md = (pipeline / "results/report.md").read_text()
    for name in ("pretraining_gain", "learning_curves", "confusion_sentiment", "confusion_ner", "data_efficiency",
                 "label_counts"):
        assert f"(figures/{name}.png)" in md and (pipeline / f"results/figures/{name}.png").stat().st_size > 1000


def test_every_stage_run_records_its_time_apart_from_the_metrics(pipeline):
    declared = [j for j in dag.jobs(params.load(pipeline / "params.yaml")) if dag.STAGES[j.stage].timed]
    assert {j.stage for j in declared} == {"data", "tokenizer", "encode", "pack", "pretrain", "adapt", "finetune",
                                           "evaluate"}
    for job in declared:
        t = read_json(pipeline / paths.timing(job.stage, job.name))
        assert t["seconds"] > 0 and t["peak_rss_mb"] > 10, job
    assert read_json(pipeline / "results/timing/pretrain/gru/seed42.json")["tokens_per_second"] > 0
    assert read_json(pipeline / "results/timing/finetune/ner/gru/full.json")["examples_per_second"] > 0
    assert read_json(pipeline / "results/timing/encode/ner.json")["tokens"] > 1000
    for metrics in [*pipeline.glob("results/pretrain/*/*/metrics.json"),
                    *pipeline.glob("results/finetune/*/*/*/metrics.json")]:
        assert not {"train_seconds", "tokens_per_second"} & set(read_json(metrics)), metrics
    text = (pipeline / "results/report.md").read_text()
    assert "| encode | ner |" in text and "| finetune | ner/gru/full |" in text and "examples/s" in text


def test_report_outside_a_git_repository_says_why_there_is_no_comparison(pipeline):
    text = (pipeline / "results/report.md").read_text()
    assert "## Across revisions and experiments\n\nNot available: compare: " in text


def test_encoded_task_keeps_splits(pipeline):
    dd = load_from_disk(str(Path(pipeline) / "data/encoded/sentiment"))
    assert set(dd) == {"train", "validation", "test"}


def test_rerun_replaces_outputs_and_leaves_no_temp_files(pipeline, tiny_params):
    data.run(tiny_params, "ner")
    leftovers = [p for p in pipeline.rglob(".*.tmp-*")]
    assert leftovers == []


@pytest.fixture
def rerun(pipeline, tmp_path, monkeypatch):
    """A copy of the finished pipeline folder to run stages again in."""
    import shutil

    copy_dir = tmp_path / "again"
    shutil.copytree(pipeline, copy_dir, ignore=shutil.ignore_patterns("checkpoints"))
    monkeypatch.chdir(copy_dir)
    return copy_dir


def digests(root: Path, folders: list[str]) -> dict:
    import hashlib

    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for folder in folders for f in sorted((root / folder).rglob("*")) if f.is_file()}


def test_same_params_twice_give_identical_weights_and_metric_files(pipeline, rerun):
    """Every stage from tokenization to evaluation again on CPU: byte-identical outputs (model
    weights, metric files, predictions), only the timing files differ."""
    outputs = ["data/encoded/ner", "data/blocks", "models/pretrain/gru/seed42", "results/pretrain/gru/seed42",
               "models/adapt/ner/gru/seed42", "results/adapt/ner/gru/seed42", "models/finetune/ner/gru/full",
               "results/finetune/ner/gru/full",
               "results/metrics/ner/gru", "results/predictions/ner/gru"]
    for argv in (["encode", "--task", "ner"], ["pack"], ["pretrain", "--model", "gru", "--seed", "42"],
                 ["pretrain", "--model", "gru", "--seed", "43"], ["adapt", "--task", "ner", "--model", "gru", "--seed",
                                                                  "42"],
                 ["adapt", "--task", "ner", "--model", "gru", "--seed", "43"], ["settings", "--model", "gru"],
                 ["finetune", "--task", "ner", "--model", "gru", "--run", "full"],
                 ["evaluate", "--task", "ner", "--model", "gru", "--run", "full"]):
        assert cli.main(argv) == 0, argv
    first, second = digests(pipeline, outputs), digests(rerun, outputs)
    assert len(first) > 20 and second == first
    assert any(f.endswith("model.safetensors") for f in first)


def test_non_finite_loss_stops_training_naming_step_and_learning_rate(rerun, capfd):
    """Poisoned pretrained weights make the first loss NaN: the run stops at step 1 in one line,
    and writes none of its outputs."""
    import shutil

    from safetensors.torch import load_file, save_file

    weights = rerun / "models/adapt/sentiment/gru/seed42/model.safetensors"
    state = load_file(weights)
    state["model.rnn.weight_hh_l0"][0, 0] = float("nan")  # every state after the first token
    save_file(state, weights, metadata={"format": "pt"})
    for out in ("models/finetune/sentiment/gru/full", "results/finetune/sentiment/gru/full"):
        shutil.rmtree(rerun / out)
    capfd.readouterr()
    assert cli.main(["finetune", "--task", "sentiment", "--model", "gru", "--run", "full"]) == 1
    err = capfd.readouterr().err  # transformers' own load report comes first
    ours = [line for line in err.splitlines() if line.startswith("scratchlm:")]
    assert len(ours) == 1 and ours[0].startswith("scratchlm: error: training diverged"), err
    assert "not finite at step 1 (learning rate" in ours[0] and "lower finetune.training.lr" in ours[0]
    assert "Traceback" not in err
    assert not (rerun / "models/finetune/sentiment/gru/full").exists()
    assert not (rerun / "results/finetune/sentiment/gru/full").exists()


def test_checkpoints_work_in_transformers_own_pipelines_and_generate(pipeline):
    """What the README shows: `import scratchlm`, then transformers' pipelines and generate() on
    the pipeline's checkpoints, in a fresh process (the Auto classes learn our family on import)."""
    import subprocess
    import sys

    from conftest import HUNG_AFTER_S, env

    code = """
import scratchlm
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
classify = pipeline("text-classification", model="models/finetune/sentiment/gru/full/seed1")
print("CLS", classify("Overall, it was not at all good.")[0]["label"] in ("negative", "positive"))
tag = pipeline("token-classification", model="models/finetune/ner/gru/full/seed1", aggregation_strategy="simple")
print("NER", isinstance(tag("Police in Quexhaven said Zorblat Vel was arrested."), list))
fill = pipeline("fill-mask", model="models/pretrain/bert/seed42")
print("MASK", len(fill("Overall, it was [MASK].")) == 5)
tok = AutoTokenizer.from_pretrained("models/pretrain/gru/seed42")
lm = AutoModelForCausalLM.from_pretrained("models/pretrain/gru/seed42")
ids = tok("The plot was", return_tensors="pt")["input_ids"]
print("PROMPT", ids[0, 0].item() == tok.cls_token_id and tok.sep_token_id not in ids[0].tolist())
out = lm.generate(ids, do_sample=False)
new = out.shape[1] - ids.shape[1]
print("GEN", new > 0 and (new == 40 or out[0, -1].item() == tok.sep_token_id))  # stops at [SEP] or its budget
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=pipeline, env=env(), capture_output=True, text=True,
                          timeout=HUNG_AFTER_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines()
                 if line.split(" ")[0] in ("CLS", "NER", "MASK", "PROMPT", "GEN"))
    assert lines == {"CLS": "True", "NER": "True", "MASK": "True", "PROMPT": "True", "GEN": "True"}, proc.stdout
