"""A named checkpoint (hub id or local directory) replaces pretraining for the encoder and
training for the tokenizer: exercised offline against a local directory, and the offline
failure is one line."""

import copy
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import HUNG_AFTER_S, env
from scratchlm import params
from scratchlm.atomic import read_json
from scratchlm.errors import ScratchError
from scratchlm.stages import data, pack, pretrain, tokenizer


@pytest.fixture
def checkpoint(tmp_path_factory, tiny_params):
    """A small masked-LM checkpoint with its tokenizer, as `save_pretrained` leaves it."""
    from scratchlm.models import pretraining_model

    path = tmp_path_factory.mktemp("bert-tiny-cased")
    corpus, _ = data.build("corpus", tiny_params["data"]["datasets"]["corpus"], 1)
    tok = tokenizer.train(corpus["train"], 300, 2)
    spec = {**tiny_params["pretrain"]["models"]["bert"], "checkpoint": None}
    torch.manual_seed(0)
    pretraining_model(spec, tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def with_checkpoint(tiny_params, path) -> dict:
    p = copy.deepcopy(tiny_params)
    p["tokenizer"]["checkpoint"] = str(path)
    p["pretrain"]["models"] = {"bert": {**p["pretrain"]["models"]["bert"], "checkpoint": str(path)}}
    p["finetune"]["prompting"]["models"] = []   # they named the GRU, gone from this model set
    p["adapt"]["ablation"]["models"] = []
    return params.validate(p)


def test_checkpoint_is_loaded_instead_of_pretrained(workdir, tiny_params, checkpoint):
    from safetensors.torch import load_file

    p = with_checkpoint(tiny_params, checkpoint)
    data.run(p, "corpus")
    tokenizer.run(p)
    assert (workdir / "models/tokenizer/tokenizer.json").read_bytes() == (checkpoint / "tokenizer.json").read_bytes()
    pack.run(p)
    pretrain.run(p, "bert", "42")
    m = read_json("results/pretrain/bert/seed42/metrics.json")
    assert m["steps"] == 0 and m["objective"] == "masked" and m["val_loss"] > 0
    saved = load_file(workdir / "models/pretrain/bert/seed42/model.safetensors")
    original = load_file(checkpoint / "model.safetensors")
    assert all(torch.equal(saved[k], original[k]) for k in original)


def test_model_checkpoint_needs_the_checkpoint_tokenizer(tiny_params, checkpoint):
    p = with_checkpoint(tiny_params, checkpoint)
    p["tokenizer"]["checkpoint"] = None
    with pytest.raises(ScratchError, match="pretrain.models.bert.checkpoint = .* set tokenizer.checkpoint"):
        params.validate(p)


def test_offline_checkpoint_fails_in_one_line(tmp_path, tiny_params):
    p = copy.deepcopy(tiny_params)
    p["tokenizer"]["checkpoint"] = "bert-base-cased"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    e = env()
    e.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "scratchlm", "tokenizer"], cwd=tmp_path, capture_output=True,
                          text=True, env=e, timeout=HUNG_AFTER_S)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "tokenizer.checkpoint = 'bert-base-cased': cannot load it" in proc.stderr
    assert "local copy" in proc.stderr
