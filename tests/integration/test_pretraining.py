"""Pretraining for real: the language models learn (validation perplexity far below a unigram
model's), on synthetic text and on real IMDB reviews, and a killed run resumes from its last
checkpoint to the same result as an uninterrupted one. Marked slow."""

import copy
import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import HUNG_AFTER_S, SHARED_DATA, env, kill_at
from scratchlm.atomic import read_json
from scratchlm.stages import data, pack, pretrain, tokenizer

pytestmark = pytest.mark.slow


def prepare(p: dict) -> None:
    data.run(p, p["pretrain"]["corpus"])
    tokenizer.run(p)
    pack.run(p)


@pytest.fixture
def corpus_params(tiny_params):
    p = copy.deepcopy(tiny_params)
    p["data"]["datasets"]["corpus"].update(train=3000, validation=200, test=10)
    p["tokenizer"]["vocab_size"] = 1000
    models = p["pretrain"]["models"]
    models["lstm"] = {**models["gru"], "cell": "lstm"}  # the tiny preset keeps only one recurrent model
    for name in ("gru", "lstm"):
        models[name].update(embedding_size=64, hidden_size=128)
    # masked LM sits on a unigram plateau for a while before context pays: more steps, lower lr
    models["bert"].update(hidden_size=64, num_layers=2, intermediate_size=128,
                          training={"max_steps": 1000, "lr": 0.002})
    p["pretrain"]["training"].update(max_steps=300, batch_size=32, lr=0.005, eval_steps=100,
                                     early_stopping_patience=0)
    return p


@pytest.mark.parametrize("model", ["gru", "lstm", "bert"])
def test_short_pretraining_beats_a_unigram_model_by_far(workdir, corpus_params, model):
    p = corpus_params
    p["pretrain"]["models"] = {model: p["pretrain"]["models"][model]}
    prepare(p)
    pretrain.run(p, model, "42")
    m = read_json(f"results/pretrain/{model}/seed42/metrics.json")
    assert m["val_perplexity"] < m["unigram_perplexity"] / 3, m


@pytest.mark.skipif(not (SHARED_DATA / "imdb" / "unsup.jsonl.gz").exists(), reason="../shared/data is not here")
def test_a_few_hundred_steps_on_real_imdb_reviews(workdir, corpus_params):
    ext = workdir / "data" / "external"
    ext.mkdir(parents=True)
    (ext / "imdb").symlink_to(SHARED_DATA / "imdb")
    p = corpus_params
    p["data"]["datasets"]["corpus"] = {
        "source": "local", "kind": "corpus", "files": {"train": "data/external/imdb/unsup.jsonl.gz"},
        "sample": {"train": 4000, "validation": 300, "test": 10}}
    from scratchlm.params import validate
    p = validate(p)
    p["pretrain"]["models"] = {"gru": p["pretrain"]["models"]["gru"]}
    prepare(p)
    pretrain.run(p, "gru", "42")
    m = read_json("results/pretrain/gru/seed42/metrics.json")
    assert m["val_perplexity"] < m["unigram_perplexity"] * 0.8, m


def run_pretrain(cwd):
    return subprocess.Popen([sys.executable, "-m", "scratchlm", "pretrain", "--model", "gru"], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_killed_pretraining_resumes_to_the_same_result(tmp_path, tiny_params):
    p = copy.deepcopy(tiny_params)
    p["pretrain"]["models"] = {"gru": {**p["pretrain"]["models"]["gru"], "embedding_size": 128, "hidden_size": 256}}
    p["finetune"]["overrides"] = {}
    p["finetune"]["lora"]["models"] = []  # bert is gone from this params set
    p["pretrain"]["training"].update(max_steps=60, batch_size=32, eval_steps=10, early_stopping_patience=0)
    dirs = []
    for name in ("killed", "whole"):
        d = tmp_path / name
        d.mkdir()
        (d / "params.yaml").write_text(yaml.safe_dump(p))
        cwd = os.getcwd()
        os.chdir(d)
        try:
            prepare(p)
        finally:
            os.chdir(cwd)
        dirs.append(d)
    killed, whole = dirs

    kill_at(run_pretrain(killed), killed / "checkpoints/pretrain/gru/seed42/checkpoint-10/trainer_state.json")
    assert not (killed / "models/pretrain/gru/seed42").exists()  # nothing half-written in place

    resumed = run_pretrain(killed)
    out = resumed.communicate(timeout=HUNG_AFTER_S)[0]
    assert resumed.returncode == 0, out[-2000:]
    assert "resuming from" in out and "checkpoint-" in out

    uninterrupted = run_pretrain(whole)
    out = uninterrupted.communicate(timeout=HUNG_AFTER_S)[0]
    assert uninterrupted.returncode == 0, out[-2000:]

    a = json.loads((killed / "results/pretrain/gru/seed42/metrics.json").read_text())
    b = json.loads((whole / "results/pretrain/gru/seed42/metrics.json").read_text())
    assert a["steps"] == b["steps"] == 60
    assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-4)
