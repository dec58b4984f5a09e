"""Every stage's `run()` in order on the tiny params, in-process, in a temp directory: the
artifacts each stage promises, and the properties that make them trustworthy."""

import copy
import json
import math
from pathlib import Path

import pytest
from datasets import load_from_disk

from scratchlm import cli, dag, lm, paths
from scratchlm.atomic import read_json
from scratchlm.stages import data


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
        p["finetune"]["data_efficiency"] = {"models": ["gru"], "methods": ["full"], "fractions": [0.5]}
        Path("params.yaml").write_text(yaml.safe_dump(p))
        for name in p["data"]["datasets"]:
            cli.run(["data", "--dataset", name])
        cli.run(["tokenizer"])
        for task in p["tasks"]:
            cli.run(["encode", "--task", task])
        cli.run(["pack"])
        for model in p["pretrain"]["models"]:
            cli.run(["pretrain", "--model", model])
        for stage in ("finetune", "evaluate"):
            for job in dag.jobs(p, stage):
                cli.run([stage, *job.args()])
        cli.run(["report"])
        yield root
    finally:
        os.chdir(here)


def out(kind: str, task: str, model: str, run: str) -> Path:
    template = {"metrics": paths.METRICS, "predictions": paths.PREDICTIONS, "confusion": paths.CONFUSION,
                "details": paths.DETAILS}[kind]
    return paths.path(template, task=task, model=model, run=run)


def test_pretrain_writes_model_metrics_curves_and_samples(pipeline):
    out = pipeline / "results/pretrain/gru"
    m = read_json(out / "metrics.json")
    assert math.isclose(m["val_perplexity"], math.exp(m["val_loss"]), rel_tol=1e-3)
    assert m["unigram_perplexity"] > 1 and m["steps"] == 20 and m["parameters"] > 0
    assert m["device"] == "cpu" and m["precision"] in ("fp32", "bf16")  # auto: bf16 where the CPU has it
    assert 0 <= m["state_saturation_init"] <= 1 and 0 <= m["state_saturation"] <= 1
    assert "state_saturation" not in read_json(pipeline / "results/pretrain/bert/metrics.json")
    assert (out / "plots/loss.tsv").read_text().startswith("step\tloss")
    assert (out / "plots/eval/loss.tsv").exists()
    assert (out / "samples.md").read_text().count("- **") == len(lm.PROMPTS)
    assert (pipeline / "models/pretrain/gru/model.safetensors").exists()
    assert (pipeline / "models/pretrain/gru/tokenizer.json").exists()
    assert not (pipeline / "checkpoints/pretrain/gru").exists()  # a finished run leaves no checkpoints


def test_finetune_and_evaluate_write_consistent_metrics(pipeline):
    for method in ("full", "scratch"):
        m = read_json(out("metrics", "sentiment", "gru", method))
        rows = [json.loads(line) for line in out("predictions", "sentiment", "gru", method).read_text().splitlines()]
        assert m["test_examples"] == len(rows) == 50
        assert math.isclose(m["accuracy"], sum(r["label"] == r["prediction"] for r in rows) / len(rows))
        assert all(math.isclose(sum(r["probabilities"]), 1, abs_tol=1e-3) for r in rows)
        assert m["train_examples"] == 200
        # gradual unfreezing (ULMFiT, on in params.yaml) has reached the top layers only in 20 steps
        assert m["trainable_fraction"] == 1.0 if method == "scratch" else 0 < m["trainable_fraction"] < 1
        confusion = read_json(out("confusion", "sentiment", "gru", method))
        assert len(confusion) == 50 and set(confusion[0]) == {"actual", "predicted"}


def test_ner_predictions_are_per_word_and_rescore_to_the_metrics(pipeline):
    from scratchlm import metrics

    for model in ("gru", "bert"):
        m = read_json(out("metrics", "ner", model, "full"))
        rows = [json.loads(line) for line in out("predictions", "ner", model, "full").read_text().splitlines()]
        assert m["test_examples"] == len(rows) == 30
        assert all(len(r["words"]) == len(r["tags"]) == len(r["predicted"]) for r in rows)
        again = metrics.entities([r["tags"] for r in rows], [r["predicted"] for r in rows])
        details = read_json(out("details", "ner", model, "full"))
        assert math.isclose(again["entity_f1"], m["entity_f1"])
        assert set(details["per_type"]) <= {"PER", "ORG", "LOC", "MISC"}
        assert all(isinstance(v, (int, float)) for v in m.values())  # scalars only: dvc metrics diff reads them


def test_lora_run_trains_a_small_share_and_keeps_its_adapter(pipeline):
    for task in ("sentiment", "ner"):
        m = read_json(out("metrics", task, "bert", "lora"))
        assert 0 < m["trainable_fraction"] < read_json(out("metrics", task, "bert", "full"))["trainable_fraction"]
        assert (pipeline / f"models/finetune/{task}/bert/lora/adapter/adapter_config.json").exists()


def test_fraction_run_trains_on_its_share_of_the_labels(pipeline):
    m = read_json(out("metrics", "sentiment", "gru", "full-0.5"))
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
    for run in ("sentiment | gru | full", "sentiment | gru | scratch", "ner | bert | lora",
                "sentiment | gru | full-0.5"):
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


def test_every_stage_run_records_its_time_apart_from_the_metrics(pipeline, tiny_params):
    declared = [j for j in dag.jobs(tiny_params) if dag.STAGES[j.stage].timed]
    assert {j.stage for j in declared} == {"data", "tokenizer", "encode", "pack", "pretrain", "finetune", "evaluate"}
    for job in declared:
        t = read_json(pipeline / paths.timing(job.stage, job.name))
        assert t["seconds"] > 0 and t["peak_rss_mb"] > 10, job
    assert read_json(pipeline / "results/timing/pretrain/gru.json")["tokens_per_second"] > 0
    assert read_json(pipeline / "results/timing/finetune/ner/gru/full.json")["examples_per_second"] > 0
    assert read_json(pipeline / "results/timing/encode/ner.json")["tokens"] > 1000
    for metrics in [*pipeline.glob("results/pretrain/*/metrics.json"),
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
    outputs = ["data/encoded/ner", "data/blocks", "models/pretrain/gru", "results/pretrain/gru",
               "models/finetune/ner/gru/full", "results/finetune/ner/gru/full", "results/metrics/ner/gru",
               "results/predictions/ner/gru"]
    for argv in (["encode", "--task", "ner"], ["pack"], ["pretrain", "--model", "gru"],
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

    weights = rerun / "models/pretrain/gru/model.safetensors"
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
