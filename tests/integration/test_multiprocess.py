"""`processes: 2` trains through torchrun with DDP (gloo on CPU): the global batch is split over the
workers, rank 0 writes the outputs, and the metrics come out close to one process's."""

import copy
import os
import shutil

import pytest
import yaml

from scratchlm import cli
from scratchlm.atomic import read_json
from scratchlm.errors import ScratchError
from scratchlm.params import validate

STAGES = (["pretrain", "--model", "gru"], ["adapt", "--task", "sentiment", "--model", "gru"],
          ["settings", "--model", "gru"], ["finetune", "--task", "sentiment", "--model", "gru", "--run", "full"])


def in_folder(folder, p: dict, argvs) -> None:
    (folder / "params.yaml").write_text(yaml.safe_dump(p))
    here = os.getcwd()
    os.chdir(folder)
    try:
        for argv in argvs:
            assert cli.main(argv) == 0, argv
    finally:
        os.chdir(here)


@pytest.fixture
def prepared(tmp_path, tiny_params):
    """Data, tokenizer, tokenized sentiment and packed corpus, for a GRU alone."""
    p = copy.deepcopy(tiny_params)
    p["pretrain"]["models"] = {"gru": p["pretrain"]["models"]["gru"]}
    p["finetune"]["overrides"], p["finetune"]["lora"]["models"] = {}, []
    p["pretrain"]["training"].update(max_steps=40, batch_size=16, eval_steps=20)
    p["finetune"]["training"].update(max_steps=40, batch_size=16, eval_steps=20, early_stopping_patience=0)
    one = tmp_path / "one"
    one.mkdir()
    in_folder(one, p, (["data", "--dataset", "sentiment"], ["data", "--dataset", "corpus"], ["tokenizer"],
                       ["encode", "--task", "sentiment"], ["pack"]))
    return p, one


@pytest.mark.slow
def test_two_gloo_processes_train_to_the_metrics_of_one(prepared, tmp_path):
    p, one = prepared
    two = tmp_path / "two"
    shutil.copytree(one, two)
    in_folder(one, p, STAGES)
    in_folder(two, {**p, "processes": 2}, STAGES)

    for path in ("results/pretrain/gru/seed42/metrics.json", "results/finetune/sentiment/gru/full/metrics.json"):
        a, b = read_json(one / path), read_json(two / path)
        assert a["steps"] == b["steps"] == 40, path
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=0.03), (path, a, b)
    a, b = (read_json(folder / "results/adapt/sentiment/gru/seed42/metrics.json") for folder in (one, two))
    assert a["steps"] == b["steps"] == 10 and b["val_perplexity"] == pytest.approx(a["val_perplexity"], rel=0.03)
    assert read_json(two / "results/timing/pretrain/gru/seed42.json")["tokens_per_second"] > 0
    assert (two / "models/finetune/sentiment/gru/full/seed42/model.safetensors").exists()
    assert not (two / "checkpoints/pretrain/gru").exists()


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tiny_params):
    p = {**copy.deepcopy(tiny_params), "processes": 3}
    with pytest.raises(ScratchError, match=r"pretrain.training.batch_size = 16 does not split over processes = 3"):
        validate(p)
    p["pretrain"]["training"]["batch_size"] = 15
    with pytest.raises(ScratchError, match=r"adapt.training.batch_size = 16 does not split over processes = 3"):
        validate(p)
    p["adapt"]["training"]["batch_size"] = 15
    with pytest.raises(ScratchError, match=r"finetune.training.batch_size = 16 does not split over processes = 3"):
        validate(p)
