"""What the GPU path needs that a CPU can check: each training job claims GPUs of its own on a
machine with several, the gpu preset validates, and the FLOP counts behind model FLOP utilisation
agree with a count by hand."""

import fcntl
import os
import threading
import time

import pytest
import yaml

from conftest import DEFAULT_PARAMS
from scratchlm import gpus, params, presets
from scratchlm.errors import ScratchError


@pytest.fixture
def no_gpu_choice(workdir, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return workdir


def hold(index: int):
    gpus.GPU_LOCKS.mkdir(parents=True, exist_ok=True)
    f = open(gpus.GPU_LOCKS / f"{index}.lock", "a+")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


def test_a_job_claims_a_free_gpu_and_sees_only_it(no_gpu_choice):
    held = hold(0)
    with gpus.claimed(1, total=2) as ids:
        assert ids == [1] and os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    held.close()
    with gpus.claimed(2, total=2) as ids:  # a 2-process (DDP) job takes two
        assert ids == [0, 1] and os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_nothing_to_choose_with_one_gpu_none_or_a_scheduler_that_chose(no_gpu_choice, monkeypatch):
    for total in (0, 1):
        with gpus.claimed(1, total=total) as ids:
            assert ids is None and "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # SLURM's, or the user's
    with gpus.claimed(1, total=4) as ids:
        assert ids is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_a_job_waits_for_a_gpu_while_others_hold_them_all(no_gpu_choice):
    held = [hold(0), hold(1)]
    got = {}

    def claim():
        with gpus.claimed(1, total=2, poll_s=0.05) as ids:
            got["ids"] = ids

    waiter = threading.Thread(target=claim)
    waiter.start()
    time.sleep(0.3)
    assert "ids" not in got
    held[1].close()
    waiter.join(5)
    assert got["ids"] == [1]
    held[0].close()


def test_more_processes_than_gpus_is_refused_in_one_line(no_gpu_choice):
    with pytest.raises(ScratchError, match=r"processes = 3 asks for 3 GPUs, and this machine has 2"):
        with gpus.claimed(3, total=2):
            pass


def test_the_gpu_preset_validates_with_every_family_and_imdb():
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    presets.merge(raw, params.read_yaml(presets.PRESETS_DIR / "gpu.yaml"))
    p = params.validate(raw)
    assert {spec["arch"] for spec in p["pretrain"]["models"].values()} == {"recurrent", "bert"}
    assert {p["pretrain"]["models"][m]["cell"] for m in ("gru", "lstm")} == {"gru", "lstm"}
    assert set(p["tasks"]) == {"conll2003", "sst2", "imdb"} and len(p["finetune"]["seeds"]) >= 3
    assert "unsup" in p["data"]["datasets"]["text"]["parts"]
    assert not p["data"]["datasets"]["text"]["parts"]["unsup"]["sample"]  # all 50,000 unlabeled reviews


def test_flop_counts_match_a_count_by_hand():
    from transformers import BertConfig

    from benchmarks import flops
    from scratchlm.models import RecurrentConfig

    gru = RecurrentConfig(vocab_size=100, cell="gru", embedding_size=8, hidden_size=16, num_layers=1)
    # 3 gates x 2 x (8*16 + 16*16), the projection 16 -> 8, the tied softmax 8 -> 100; x3 for the backward
    assert flops.per_token(gru, 64) == 3 * (3 * 2 * (128 + 256) + 2 * 16 * 8 + 2 * 8 * 100)
    lstm = RecurrentConfig(vocab_size=100, cell="lstm", embedding_size=16, hidden_size=16, num_layers=2,
                           bidirectional=True)
    assert flops.per_token(lstm, 64) == 3 * 2 * (4 * 2 * (256 + 256) * 2 + 2 * 16 * 100)
    bert = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, intermediate_size=256)
    layer = 8 * 64 * 64 + 4 * 128 * 64 + 4 * 64 * 256  # QKV + output, scores + weighted sum, feed-forward
    head = 0.15 * (2 * 64 * 64 + 2 * 64 * 1000)  # on the masked positions only
    assert flops.per_token(bert, 128, 0.15) == pytest.approx(3 * (2 * layer + head))
    # sampled softmax over 30 classes a position: the softmax's 100 rows become 30
    assert flops.per_token(gru, 64, classes=30) == 3 * (3 * 2 * (128 + 256) + 2 * 16 * 8 + 2 * 8 * 30)


def test_sampled_classes_count_the_expected_distinct_draws_padded_and_the_target():
    """Labels with shares 1/2, 1/4, 1/4 in a vocabulary of 10, 3 draws (2 from the labels, 1
    uniform): each class is in with chance 1 - (1 - share)^2 * 0.9; the loss pads them to 64
    columns, and scores the position's own; a full softmax has none to count."""
    import torch

    from benchmarks import gpu
    from scratchlm.models.recurrent import draw_chances

    labels = torch.tensor([[7, 7, 8, 9, -100]])
    expected = 7 * (1 - 0.9) + (1 - 0.25 * 0.9) + 2 * (1 - 0.75 ** 2 * 0.9)
    assert float(draw_chances(labels[labels != -100], 10, 3).sum()) == pytest.approx(expected)
    assert gpu.sampled_classes(3, 10, labels) == 64 + 1
    assert gpu.sampled_classes(0, 10, labels) is None


def test_the_bench_times_a_sampled_softmax_lm_beside_its_full_softmax():
    """A recurrent LM with `sampled_softmax`: its FLOPs count the classes it scores, and the step
    is also timed without it (the full softmax), at toy sizes."""
    from benchmarks import gpu

    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    raw["tokenizer"]["vocab_size"], raw["pack"]["block_size"] = 300, 16
    raw["pretrain"]["models"]["lm"] = {"arch": "recurrent", "cell": "lstm", "embedding_size": 8, "hidden_size": 8,
                                       "bidirectional": True, "sampled_softmax": 16, "training": {"batch_size": 2}}
    p = params.validate(raw)
    found = gpu.one_model("lm", p, "cpu", "fp32", 1e12, gpu.CPU)
    assert set(found["tokens_per_second_without"]) == {"without_sampled_softmax", "without_dropout"}
    model = gpu._model(p["pretrain"]["models"]["lm"], 300)
    assert model.sampled_softmax == 16
    full = gpu.flops.recurrent(model.config)
    assert 0 < found["flops_per_token"] < full


def test_the_step_ablations_restore_what_they_change():
    """The benchmark's steps without dropout or with the other attention kernel leave the model
    as it was (the next measurement sees the pipeline's model)."""
    from benchmarks import gpu
    from scratchlm.models import pretraining_model

    spec = {"arch": "bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 16,
            "dropout": 0.1, "pretraining_dropout": None, "max_position": 32, "checkpoint": None}
    model = pretraining_model(spec, gpu._Vocabulary(40))
    model.set_attn_implementation("eager")
    with gpu._without("dropout", model, "cpu"):
        assert not gpu._dropout(model)
    with gpu._without("eager", model, "cpu"):
        assert model.bert.config._attn_implementation == "sdpa"
    assert gpu._dropout(model) and model.bert.config._attn_implementation == "eager"
    lm = pretraining_model({"arch": "recurrent", "cell": "lstm", "embedding_size": 8, "hidden_size": 8,
                            "num_layers": 1, "dropout": 0.1, "tie_embeddings": True, "bidirectional": True,
                            "embedding_dropout": 0.0, "weight_drop": 0.0, "variational": False,
                            "activation_reg": 0.0, "temporal_activation_reg": 0.0, "sampled_softmax": 16},
                           gpu._Vocabulary(40))
    with gpu._without("sampled_softmax", lm, "cpu"):
        assert lm.sampled_softmax == 0
    assert lm.sampled_softmax == 16
