"""A fine-tuning run killed with SIGKILL resumes from its last checkpoint to the same result as an
uninterrupted one: weights, optimizer, scheduler, RNG and the ULMFiT schedule (gradual unfreezing,
slanted triangular rates) all come back. Marked slow."""

import copy
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import HUNG_AFTER_S, env, kill_at
from scratchlm import cli
from scratchlm.atomic import read_json

pytestmark = pytest.mark.slow

FINETUNE = ["finetune", "--task", "ner", "--model", "gru", "--run", "full"]


def start(cwd):
    return subprocess.Popen([sys.executable, "-m", "scratchlm", *FINETUNE], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc) -> str:
    """The run's output once it ends; a run still going after HUNG_AFTER_S is hung: killed, not left behind."""
    try:
        return proc.communicate(timeout=HUNG_AFTER_S)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running after {HUNG_AFTER_S} s (hung?): {proc.communicate()[0][-2000:]}")


@pytest.fixture
def two_copies(tmp_path, tiny_params):
    """Two folders with the same data, tokenizer and pretrained, adapted GRU, ready to fine-tune."""
    p = copy.deepcopy(tiny_params)
    p["pretrain"]["models"] = {"gru": {**p["pretrain"]["models"]["gru"], "embedding_size": 128, "hidden_size": 256}}
    p["finetune"]["overrides"], p["finetune"]["lora"]["models"] = {}, []
    p["finetune"]["training"].update(epochs=4, max_steps=-1, batch_size=8, eval_steps=10, early_stopping_patience=0)
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "params.yaml").write_text(yaml.safe_dump(p))
    here = os.getcwd()
    os.chdir(killed)
    try:
        for argv in (["data", "--dataset", "ner"], ["data", "--dataset", "corpus"], ["tokenizer"],
                     ["encode", "--task", "ner"], ["pack"], ["pretrain", "--model", "gru"],
                     ["adapt", "--task", "ner", "--model", "gru"], ["settings", "--model", "gru"]):
            assert cli.main(argv) == 0, argv
    finally:
        os.chdir(here)
    whole = tmp_path / "whole"
    shutil.copytree(killed, whole)
    return killed, whole


def test_killed_finetuning_resumes_to_the_same_result(two_copies):
    killed, whole = two_copies
    marker = killed / "checkpoints/finetune/ner/gru/full/seed42/checkpoint-20/trainer_state.json"
    kill_at(start(killed), marker)
    assert not (killed / "models/finetune/ner/gru/full").exists()  # nothing half-written in place
    assert not (killed / "results/timing/finetune/ner/gru/full.json").exists()

    for folder in (killed, whole):
        proc = start(folder)
        out = finish(proc)
        assert proc.returncode == 0, out[-2000:]
        assert ("resuming from" in out) == (folder is killed), out[-2000:]

    a = read_json(killed / "results/finetune/ner/gru/full/metrics.json")
    b = read_json(whole / "results/finetune/ner/gru/full/metrics.json")
    assert a["ulmfit"] and a["steps"] == b["steps"] > 20
    assert a["val_entity_f1"] == pytest.approx(b["val_entity_f1"], abs=1e-4)
    assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-4)
