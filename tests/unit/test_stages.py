"""Every stage's `run()` in order on the tiny params, in-process, in a temp directory: the
artifacts each stage promises, and the properties that make them trustworthy."""

import copy
import json
import math
from pathlib import Path

import pytest
from datasets import load_from_disk

from scratchlm import data, evaluate, finetune, pack, pretrain, report, tokenize, tokenizer
from scratchlm.io import read_json
from scratchlm.workflow import runs


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_params):
    import os

    here = os.getcwd()
    root = tmp_path_factory.mktemp("pipeline")
    os.chdir(root)
    try:
        p = copy.deepcopy(tiny_params)
        p["finetune"]["data_efficiency"] = {"models": ["gru"], "methods": ["full"], "fractions": [0.5]}
        for name in p["data"]["datasets"]:
            data.run(p, name)
        tokenizer.run(p)
        for task in p["tasks"]:
            tokenize.run(p, task)
        pack.run(p)
        for model in p["pretrain"]["models"]:
            pretrain.run(p, model)
        for run in runs(p):
            finetune.run(p, run.task, run.model, run.method, run.fraction)
            evaluate.run(p, run.task, run.model, run.method, run.fraction)
        report.run(p)
        yield root
    finally:
        os.chdir(here)


def test_pretrain_writes_model_metrics_curves_and_samples(pipeline):
    out = pipeline / "results/pretrain/gru"
    m = read_json(out / "metrics.json")
    assert math.isclose(m["val_perplexity"], math.exp(m["val_loss"]), rel_tol=1e-3)
    assert m["unigram_perplexity"] > 1 and m["steps"] == 20 and m["parameters"] > 0
    assert 0 <= m["state_saturation_init"] <= 1 and 0 <= m["state_saturation"] <= 1
    assert "state_saturation" not in read_json(pipeline / "results/pretrain/bert/metrics.json")
    assert (out / "plots/loss.tsv").read_text().startswith("step\tloss")
    assert (out / "plots/eval/loss.tsv").exists()
    assert (out / "samples.md").read_text().count("- **") == len(pretrain.PROMPTS)
    assert (pipeline / "models/pretrain/gru/model.safetensors").exists()
    assert (pipeline / "models/pretrain/gru/tokenizer.json").exists()
    assert not (pipeline / "checkpoints/pretrain/gru").exists()  # a finished run leaves no checkpoints


def test_finetune_and_evaluate_write_consistent_metrics(pipeline):
    for method in ("full", "scratch"):
        m = read_json(evaluate.output("metrics", "sentiment", "gru", method))
        rows = [json.loads(line) for line in evaluate.output("predictions", "sentiment", "gru", method).read_text().splitlines()]
        assert m["test_examples"] == len(rows) == 50
        assert math.isclose(m["accuracy"], sum(r["label"] == r["prediction"] for r in rows) / len(rows))
        assert all(math.isclose(sum(r["probabilities"]), 1, abs_tol=1e-3) for r in rows)
        assert m["train_examples"] == 200
        # gradual unfreezing (ULMFiT, on in params.yaml) has reached the top layers only in 20 steps
        assert m["trainable_fraction"] == 1.0 if method == "scratch" else 0 < m["trainable_fraction"] < 1
        confusion = read_json(evaluate.output("confusion", "sentiment", "gru", method))
        assert len(confusion) == 50 and set(confusion[0]) == {"actual", "predicted"}


def test_ner_predictions_are_per_word_and_rescore_to_the_metrics(pipeline):
    from scratchlm import metrics

    for model in ("gru", "bert"):
        m = read_json(evaluate.output("metrics", "ner", model, "full"))
        rows = [json.loads(line) for line in evaluate.output("predictions", "ner", model, "full").read_text().splitlines()]
        assert m["test_examples"] == len(rows) == 30
        assert all(len(r["words"]) == len(r["tags"]) == len(r["predicted"]) for r in rows)
        again = metrics.entities([r["tags"] for r in rows], [r["predicted"] for r in rows])
        details = read_json(evaluate.output("details", "ner", model, "full"))
        assert math.isclose(again["entity_f1"], m["entity_f1"]) and set(details["per_type"]) <= {"PER", "ORG", "LOC", "MISC"}
        assert all(isinstance(v, (int, float)) for v in m.values())  # scalars only: dvc metrics diff reads them


def test_lora_run_trains_a_small_share_and_keeps_its_adapter(pipeline):
    for task in ("sentiment", "ner"):
        m = read_json(evaluate.output("metrics", task, "bert", "lora"))
        assert 0 < m["trainable_fraction"] < read_json(evaluate.output("metrics", task, "bert", "full"))["trainable_fraction"]
        assert (pipeline / f"models/finetune/{task}/bert/lora/adapter/adapter_config.json").exists()


def test_fraction_run_trains_on_its_share_of_the_labels(pipeline):
    m = read_json(evaluate.output("metrics", "sentiment", "gru", "full-0.5"))
    assert m["train_examples"] == 100 and m["test_examples"] == 50


def test_scratch_control_does_not_start_from_pretrained_weights(pipeline):
    import torch
    from safetensors.torch import load_file

    pre = load_file(pipeline / "models/pretrain/gru/model.safetensors")
    full = load_file(pipeline / "models/finetune/sentiment/gru/full/model.safetensors")
    scratch = load_file(pipeline / "models/finetune/sentiment/gru/scratch/model.safetensors")
    key = "model.rnn.weight_hh_l0"
    # 20 small steps move weights a little: full stays near the pretrained ones, scratch does not
    assert torch.dist(full[key], pre[key]) < torch.dist(scratch[key], pre[key])


def test_report_lists_every_run(pipeline):
    text = (pipeline / "results/report.md").read_text()
    for run in ("sentiment | gru | full", "sentiment | gru | scratch", "ner | bert | lora", "sentiment | gru | full-0.5"):
        assert f"| {run} |" in text
    assert "What pretraining bought" in text and "precision    recall  f1-score" in text
    assert "## NER: entity F1 per type" in text and "| 50% |" in text


def test_html_report_is_self_contained(pipeline):
    html = (pipeline / "results/report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    assert "http://" not in html and "https://" not in html  # opens offline: no CDN, no remote image
    md = (pipeline / "results/report.md").read_text()
    for name in ("pretraining_gain", "learning_curves", "confusion_sentiment", "confusion_ner", "data_efficiency"):
        assert f"(figures/{name}.png)" in md and (pipeline / f"results/figures/{name}.png").stat().st_size > 1000


def test_tokenized_task_keeps_splits(pipeline):
    dd = load_from_disk(str(Path(pipeline) / "data/tokenized/sentiment"))
    assert set(dd) == {"train", "validation", "test"}


def test_rerun_replaces_outputs_and_leaves_no_temp_files(pipeline, tiny_params):
    data.run(tiny_params, "ner")
    leftovers = [p for p in pipeline.rglob(".*.tmp-*")]
    assert leftovers == []
