import pytest

from scratchlm.evaluate import classification_metrics, report_text
from scratchlm.finetune import build_model
from scratchlm.models import RecurrentConfig, RecurrentForCausalLM
from scratchlm.training import count_parameters
from scratchlm.workflow import dvc_stage, runs


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    path = tmp_path_factory.mktemp("pretrained")
    RecurrentForCausalLM(RecurrentConfig(vocab_size=40, embedding_size=8, hidden_size=8)).save_pretrained(path)
    return path


@pytest.mark.parametrize("method", ["full", "frozen", "scratch"])
def test_each_method_trains_exactly_the_subset_it_claims(pretrained, method):
    model = build_model(method, pretrained, ["neg", "pos"], "last", seed=0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    head = {"classifier.weight", "classifier.bias"}
    if method == "frozen":
        assert trainable == head
        counts = count_parameters(model)
        assert counts["trainable_parameters"] == 8 * 2 + 2
    else:
        assert trainable == {n for n, _ in model.named_parameters()}
    assert model.config.id2label == {0: "neg", 1: "pos"}


def test_scratch_is_same_architecture_with_fresh_weights(pretrained):
    import torch

    full, scratch = (build_model(m, pretrained, ["a", "b"], "last", seed=0) for m in ("full", "scratch"))
    assert [(n, p.shape) for n, p in full.named_parameters()] == [(n, p.shape) for n, p in scratch.named_parameters()]
    assert not torch.equal(full.model.rnn.weight_hh_l0, scratch.model.rnn.weight_hh_l0)


def test_classification_metrics_by_hand():
    # truth 0 0 0 1 1 ; pred 0 0 1 1 0 -> class 0: P 2/3 R 2/3; class 1: P 1/2 R 1/2
    m = classification_metrics([0, 0, 0, 1, 1], [0, 0, 1, 1, 0], ["neg", "pos"])
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["macro_precision"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["micro_f1"] == pytest.approx(0.6)
    assert m["per_class"]["neg"]["support"] == 3
    assert "neg" in report_text([0, 0, 0, 1, 1], [0, 0, 1, 1, 0], ["neg", "pos"])


def test_runs_and_dvc_stage_names():
    p = {"tasks": {"sentiment": {}}, "pretrain": {"models": {"gru": {}, "lstm": {}}},
         "finetune": {"methods": ["full", "scratch"]}}
    assert runs(p)[:2] == [("sentiment", "gru", "full"), ("sentiment", "gru", "scratch")]
    assert dvc_stage("finetune", {"task": "sentiment", "model": "gru", "method": "full"}) == \
        "finetune@sentiment-gru-full"
    assert dvc_stage("data", {"dataset": "ner"}) == "data@ner"
    assert dvc_stage("report", {}) == "report"


def test_checkpoints_are_kept_only_for_the_same_inputs(workdir):
    from scratchlm import training

    run = training.checkpoint_dir("pretrain/x", {"params": 1})
    (run / "checkpoint-5").mkdir()
    assert training.last_checkpoint(training.checkpoint_dir("pretrain/x", {"params": 1})).endswith("checkpoint-5")
    training.checkpoint_dir("pretrain/x", {"params": 2})
    assert training.last_checkpoint(run) is None
    training.finish(run)
    assert not run.exists()
