"""Every stage's `run()` in order on the tiny params, in-process, in a temp directory: the
artifacts each stage promises, and the properties that make them trustworthy."""

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
        p = tiny_params
        for name in p["data"]["datasets"]:
            data.run(p, name)
        tokenizer.run(p)
        for task in p["tasks"]:
            tokenize.run(p, task)
        pack.run(p)
        for model in p["pretrain"]["models"]:
            pretrain.run(p, model)
        for task, model, method in runs(p):
            finetune.run(p, task, model, method)
            evaluate.run(p, task, model, method)
        report.run(p)
        yield root
    finally:
        os.chdir(here)


def test_pretrain_writes_model_metrics_curves_and_samples(pipeline):
    out = pipeline / "results/pretrain/gru"
    m = read_json(out / "metrics.json")
    assert math.isclose(m["val_perplexity"], math.exp(m["val_loss"]), rel_tol=1e-3)
    assert m["unigram_perplexity"] > 1 and m["steps"] == 20 and m["parameters"] > 0
    assert (out / "plots/loss.tsv").read_text().startswith("step\tloss")
    assert (out / "plots/eval/loss.tsv").exists()
    assert (out / "samples.md").read_text().count("- **") == len(pretrain.PROMPTS)
    assert (pipeline / "models/pretrain/gru/model.safetensors").exists()
    assert (pipeline / "models/pretrain/gru/tokenizer.json").exists()
    assert not (pipeline / "checkpoints/pretrain/gru").exists()  # a finished run leaves no checkpoints


def test_finetune_and_evaluate_write_consistent_metrics(pipeline):
    for task, model, method in runs({"tasks": {"sentiment": {}}, "pretrain": {"models": {"gru": {}}},
                                     "finetune": {"methods": ["full", "scratch"]}}):
        m = read_json(evaluate.output("metrics", task, model, method))
        rows = [json.loads(line) for line in evaluate.output("predictions", task, model, method).read_text().splitlines()]
        assert m["test_examples"] == len(rows) == 50
        assert math.isclose(m["accuracy"], sum(r["label"] == r["prediction"] for r in rows) / len(rows))
        assert all(math.isclose(sum(r["probabilities"]), 1, abs_tol=1e-3) for r in rows)
        assert m["trainable_fraction"] == 1.0
        confusion = read_json(evaluate.output("confusion", task, model, method))
        assert len(confusion) == 50 and set(confusion[0]) == {"actual", "predicted"}


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
    for method in ("full", "scratch"):
        assert f"| sentiment | gru | {method} |" in text
    assert "What pretraining bought" in text and "precision    recall  f1-score" in text


def test_tokenized_task_keeps_splits(pipeline):
    dd = load_from_disk(str(Path(pipeline) / "data/tokenized/sentiment"))
    assert set(dd) == {"train", "validation", "test"}


def test_rerun_replaces_outputs_and_leaves_no_temp_files(pipeline, tiny_params):
    data.run(tiny_params, "ner")
    leftovers = [p for p in pipeline.rglob(".*.tmp-*")]
    assert leftovers == []
