import math

import pytest

from scratchlm import metrics, ulmfit
from scratchlm.dag import Job, Run, runs
from scratchlm.finetuning import build_model, subset
from scratchlm.methods import METHODS
from scratchlm.models import RecurrentConfig, RecurrentForCausalLM
from scratchlm.training import EpochSeededLengthSampler, count_parameters

SEQ, TOK = "sequence-classification", "token-classification"
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    path = tmp_path_factory.mktemp("pretrained")
    config = RecurrentConfig(vocab_size=40, embedding_size=8, hidden_size=8, num_layers=2)
    RecurrentForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pretrained_bert(tmp_path_factory):
    from transformers import BertConfig, BertForMaskedLM

    path = tmp_path_factory.mktemp("bert")
    BertForMaskedLM(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=32)).save_pretrained(path)
    return path


@pytest.mark.parametrize("task_type", [SEQ, TOK])
@pytest.mark.parametrize("method", ["full", "frozen", "scratch"])
def test_each_method_trains_exactly_the_subset_it_claims(pretrained, method, task_type):
    model = build_model(METHODS[method], pretrained, task_type, ["neg", "pos"], "last", seed=0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    head = {"classifier.weight", "classifier.bias"} if task_type == SEQ else {"head.classifier.weight",
                                                                              "head.classifier.bias"}
    if method == "frozen":
        assert trainable == head
        assert count_parameters(model)["trainable_parameters"] == 8 * 2 + 2
    else:
        assert trainable == {n for n, _ in model.named_parameters()}
    assert model.config.id2label == {0: "neg", 1: "pos"}


def test_frozen_with_the_tagging_head_trains_the_whole_head_and_nothing_below(pretrained):
    head = {"char_filters": 4, "char_embedding": 5, "tagger_hidden": 3, "crf": True, "head_dropout": 0.1}
    model = build_model(METHODS["frozen"], pretrained, TOK, ["O", "B-X", "I-X"], "last", seed=0, head=head,
                        tokenizer=FakeTokenizer())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith("head.")}
    assert {"head.crf.transitions", "head.tagger.weight_hh_l0", "head.chars.conv.weight"} <= trainable


@pytest.mark.parametrize("method", ["full", "frozen"])
def test_the_task_reader_is_new_and_trains_with_the_classifier(pretrained, method):
    head = {"char_filters": 0, "char_embedding": 30, "tagger_hidden": 0, "crf": False, "head_dropout": 0.1,
            "reader_hidden": 3}
    model = build_model(METHODS[method], pretrained, SEQ, ["neg", "pos"], "concat", seed=0, head=head)
    lm = RecurrentForCausalLM.from_pretrained(pretrained)
    assert model.model.embeddings.weight.equal(lm.model.embeddings.weight)  # the LM's weights below
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    new = {n for n, _ in model.named_parameters() if n.startswith(("reader.", "classifier."))}
    assert "reader.weight_hh_l0_reverse" in new
    weights = dict(model.named_parameters())
    assert all(weights[n].isfinite().all() and weights[n].std() > 0 for n in new if n.endswith("weight_ih_l0"))
    assert trainable == (new if method == "frozen" else {n for n, _ in model.named_parameters()})


class FakeTokenizer:
    all_special_ids = [0]

    def get_vocab(self):
        return {"[PAD]": 0, "▁a": 1, "b": 2}


@pytest.mark.parametrize("task_type", [SEQ, TOK])
def test_lora_trains_adapters_and_the_new_head_only(pretrained_bert, task_type):
    model = build_model(METHODS["lora"], pretrained_bert, task_type, ["a", "b", "c"], "last", seed=0, lora=LORA)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    # 2 layers x (query, value) x (A: 16x4 + B: 4x16)
    adapters = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert adapters == 2 * 2 * (16 * 4 + 4 * 16)
    assert any("classifier" in n for n in trainable)
    assert count_parameters(model)["trainable_fraction"] < 0.2


def test_lora_adapter_saves_loads_and_merges_to_the_same_function(pretrained_bert, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from scratchlm.finetuning import save

    model = build_model(METHODS["lora"], pretrained_bert, SEQ, ["a", "b"], "last", seed=0, lora=LORA)
    with torch.no_grad():  # make the adapters non-trivial (B starts at zero)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_()
    model.eval()
    x = torch.randint(1, 40, (3, 7))
    before = model(input_ids=x).logits
    save(model, tmp_path, METHODS["lora"])
    base = AutoModelForSequenceClassification.from_pretrained(pretrained_bert, num_labels=2)
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert torch.allclose(reloaded(input_ids=x).logits, before, atol=1e-5)
    assert torch.allclose(merged(input_ids=x).logits, before, atol=1e-5)


def test_lora_with_unknown_target_modules_fails_in_one_line(pretrained_bert):
    from scratchlm.errors import ScratchError

    with pytest.raises(ScratchError, match="finetune.lora.target_modules"):
        build_model(METHODS["lora"], pretrained_bert, SEQ, ["a", "b"], "last", seed=0,
                    lora={**LORA, "target_modules": ["nope"]})


def test_scratch_is_same_architecture_with_fresh_weights(pretrained):
    import torch

    full, scratch = (build_model(METHODS[m], pretrained, SEQ, ["a", "b"], "last", seed=0) for m in ("full", "scratch"))
    assert [(n, p.shape) for n, p in full.named_parameters()] == [(n, p.shape) for n, p in scratch.named_parameters()]
    assert not torch.equal(full.model.rnn.weight_hh_l0, scratch.model.rnn.weight_hh_l0)


def test_ulmfit_groups_rates_and_unfreezing(pretrained):
    from types import SimpleNamespace

    model = build_model(METHODS["full"], pretrained, SEQ, ["a", "b"], "last", seed=0)
    groups = ulmfit.layer_groups(model)
    assert len(groups) == 4  # embeddings, rnn layer 0, rnn layer 1, head
    assert sum(len(g) for g in groups) == len(list(model.parameters()))
    options = {"discriminative_decay": 2.0, "gradual_unfreezing": True, "slanted_triangular": True}
    opt = ulmfit.optimizer(model, options, lr=0.8, weight_decay=0.1)
    rates = sorted({g["lr"] for g in opt.param_groups})
    assert rates == pytest.approx([0.1, 0.2, 0.4, 0.8])
    # 300 steps, groups released over the first 30%: one more group every 30 steps, the head first
    callback = ulmfit.GradualUnfreezing(model, total_steps=300, share=0.3)
    assert callback.starts == [90, 60, 30, 0] and callback.done_at == 90
    for step, trained_groups in ((0, 1), (29, 1), (30, 2), (60, 3), (89, 3), (90, 4), (299, 4)):
        callback.on_step_begin(None, SimpleNamespace(global_step=step), None)
        trainable = [all(p.requires_grad for p in g) for g in groups]
        assert trainable == [k >= 4 - trained_groups for k in range(4)], step


def test_a_one_epoch_run_unfreezes_every_group():
    """ULMFiT unfroze a group per epoch; counted in steps, a short run releases them all too."""
    for total in (1, 7, 50, 10_000):
        starts = ulmfit.unfreeze_steps(3, total, 0.25)
        assert starts[-1] == 0 and max(starts) <= math.ceil(0.25 * total) < total or total == 1


def test_early_stopping_does_not_count_evaluations_before_the_last_group_is_released():
    from types import SimpleNamespace

    from transformers import TrainerControl

    from scratchlm.training import EarlyStopping

    stop = EarlyStopping(2, start=100)
    args = SimpleNamespace(metric_for_best_model="accuracy", greater_is_better=True, load_best_model_at_end=True,
                           eval_strategy="steps", save_strategy="steps", eval_steps=10, save_steps=10)
    state, control = SimpleNamespace(best_metric=0.9, global_step=0), TrainerControl()
    for step in range(10, 100, 10):  # no gain for nine evaluations, all while groups are frozen
        state.global_step = step
        stop.on_evaluate(args, state, control, {"eval_accuracy": 0.5})
    assert not control.should_training_stop and stop.early_stopping_patience_counter == 0
    for step in (100, 110):  # two evaluations without gain after the release: stop
        state.global_step = step
        stop.on_evaluate(args, state, control, {"eval_accuracy": 0.5})
    assert control.should_training_stop


def test_slanted_triangular_rises_then_decays_to_a_32nd():
    total = 100
    values = [ulmfit.slanted_triangular(t, total) for t in range(total + 1)]
    peak = values.index(max(values))
    assert peak == 10 and values[peak] == pytest.approx(1.0)
    assert values[0] == pytest.approx(1 / 32) and values[-1] == pytest.approx(1 / 32)
    assert all(a <= b for a, b in zip(values[:peak], values[1:peak + 1]))
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))


def test_length_grouped_order_depends_on_seed_and_epoch_only():
    """A resumed run restores the global RNG mid-epoch; the batches of an epoch must not depend on it."""
    import torch

    lengths = [(7 * i) % 53 + 1 for i in range(200)]

    def order(seed: int, epoch: int) -> list[int]:
        sampler = EpochSeededLengthSampler(8, lengths, seed)
        sampler.set_epoch(epoch)
        torch.manual_seed(epoch * 1000 + 17)  # whatever the global RNG holds
        return list(sampler)

    assert order(1, 2) == order(1, 2) and sorted(order(1, 2)) == list(range(200))
    assert order(1, 2) != order(1, 3) and order(1, 2) != order(2, 2)
    assert lengths[order(1, 0)[0]] == max(lengths)  # the longest leads, as in transformers' sampler


def test_fraction_subset_is_deterministic_and_sized():
    from datasets import Dataset

    ds = Dataset.from_dict({"x": list(range(1000))})
    a, b = subset(ds, 0.1, 3), subset(ds, 0.1, 3)
    assert len(a) == 100 and a["x"] == b["x"] and a["x"] != subset(ds, 0.1, 4)["x"]
    assert subset(ds, 1.0, 3) is ds and len(subset(ds, 0.0001, 3)) == 1


def test_classification_metrics_by_hand():
    # truth 0 0 0 1 1 ; pred 0 0 1 1 0 -> class 0: P 2/3 R 2/3; class 1: P 1/2 R 1/2
    m = metrics.classification([0, 0, 0, 1, 1], [0, 0, 1, 1, 0], ["neg", "pos"])
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["macro_precision"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["micro_f1"] == pytest.approx(0.6)
    assert m["per_class"]["neg"]["support"] == 3
    assert "neg" in metrics.classification_text([0, 0, 0, 1, 1], [0, 0, 1, 1, 0], ["neg", "pos"])


def test_entity_metrics_by_hand():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    # PER exact; LOC missed; ORG predicted as I-ORG (invalid start: strict IOB2 rejects it); a spurious MISC
    pred = [["B-PER", "I-PER", "B-MISC", "O"], ["I-ORG", "O"]]
    m = metrics.entities(true, pred)
    assert m["entity_precision"] == pytest.approx(1 / 2)  # PER right, MISC wrong
    assert m["entity_recall"] == pytest.approx(1 / 3)     # PER of PER, LOC, ORG
    assert m["entity_f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert m["token_accuracy"] == pytest.approx(3 / 6)
    assert m["per_type"]["PER"]["f1-score"] == 1.0 and m["per_type"]["LOC"]["recall"] == 0.0
    assert m["per_tag"]["B-PER"]["support"] == 1
    text = metrics.entities_text(true, pred)
    assert "PER" in text and "B-LOC" in text


def test_word_tags_keep_first_subtokens_only():
    names = ["O", "B-PER", "I-PER"]
    labels = [[-100, 1, -100, 2, 0, -100]]  # [CLS] w0 (w0 cont.) w1 w2 [SEP]
    preds = [[0, 1, 0, 0, 0, 2]]
    assert metrics.word_tags(preds, labels, names) == ([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])


def test_word_predictions_pad_truncated_words_with_o():
    from scratchlm.stages.evaluate import word_predictions

    tags = [-100, 1, 1, 0]  # [CLS] w0 (w0 cont.) w1; two more words were truncated away
    assert word_predictions(tags, [-100, 1, -100, 0], n_words=4) == [1, 0, 0, 0]


def test_runs_and_dvc_stage_names():
    p = {"tasks": {"sentiment": {}, "ner": {}}, "pretrain": {"models": {"gru": {}, "bert": {}}},
         "finetune": {"methods": ["full", "scratch"], "lora": {"models": ["bert"]},
                      "data_efficiency": {"tasks": ["ner"], "models": ["gru"], "methods": ["full"],
                                          "fractions": [0.1, 0.25]},
                      "prompting": {"tasks": [], "models": [], "methods": [], "shots": []}},
         "adapt": {"ablation": {"models": ["gru"], "methods": ["full"]}}}
    found = runs(p)
    assert found[:2] == [Run("sentiment", "gru", "full"), Run("sentiment", "gru", "scratch")]
    assert len(found) == 2 * 2 * 2 + 2 + 2 + 2  # the fraction runs of the one task listed
    assert not [r for r in found if r.task == "sentiment" and r.fraction != 1.0]
    names = [r.name for r in found if (r.task, r.model) == ("ner", "gru")]
    assert names == ["full", "scratch", "full-0.1", "full-0.25", "full-general"]
    assert Run.parse("ner", "gru", "full-general") == Run("ner", "gru", "full", 1.0, True)
    assert Job("finetune", {"task": "ner", "model": "gru", "run": "full-general"}).dvc_stage == \
        "finetune_general@ner-gru-full"
    assert Job("finetune", {"task": "sentiment", "model": "gru", "run": "full"}).dvc_stage == \
        "finetune@sentiment-gru-full"
    assert Job("evaluate", {"task": "ner", "model": "bert", "run": "lora"}).dvc_stage == "evaluate_lora@ner-bert"
    assert Job("finetune", {"task": "ner", "model": "gru", "run": "full-0.25"}).dvc_stage == \
        "finetune_fraction@ner-gru-full-0.25"
    assert Run.parse("ner", "gru", "full-0.25") == Run("ner", "gru", "full", 0.25)
    assert Job("evaluate", {"task": "ner", "model": "gru", "run": "full-0.25"}).args() == \
        ["--task", "ner", "--model", "gru", "--run", "full-0.25"]
    assert Job("data", {"dataset": "ner"}).dvc_stage == "data@ner"
    assert Job("report", {}).dvc_stage == "report"
    assert math.isclose(Run.parse("a", "b", "scratch-0.5").fraction, 0.5)


def test_checkpoints_are_kept_only_for_the_same_inputs(workdir):
    from scratchlm import training

    run = training.checkpoint_dir("pretrain/x", {"params": 1})
    (run / "checkpoint-5").mkdir()
    assert training.last_checkpoint(training.checkpoint_dir("pretrain/x", {"params": 1})).endswith("checkpoint-5")
    training.checkpoint_dir("pretrain/x", {"params": 2})
    assert training.last_checkpoint(run) is None
    training.finish(training.Fitted(None, {}, {}, run), workdir / "model", workdir / "plots", lambda folder: None)
    assert not run.exists() and (workdir / "model").is_dir()


def test_compare_table_puts_runs_in_rows_and_revisions_in_columns():
    from scratchlm.compare import KEY, table

    assert KEY.match("results/metrics/ner/gru/full-0.1.json:entity_f1")["run"] == "ner/gru/full-0.1"
    assert not KEY.match("results/metrics/ner/gru/full.json:token_accuracy")
    found = [{"revision": "main", "sentiment/gru/full accuracy": 0.5},
             {"revision": "main (exp-1)", "sentiment/gru/full accuracy": 0.75, "ner/gru/full entity_f1": 0.25}]
    md = table(found).splitlines()
    assert md[0] == "| run metric | main | main (exp-1) |"
    assert "| ner/gru/full entity_f1 | – | 25.00 |" in md and "| sentiment/gru/full accuracy | 50.00 | 75.00 |" in md
    assert table(found, "csv").splitlines()[0] == "revision,preset,ner/gru/full entity_f1,sentiment/gru/full accuracy"


def test_compare_gives_each_tasks_gain_with_its_interval():
    from scratchlm.compare import GAIN, table

    assert GAIN.match("results/headline.json:ner.gain_low").group("task", "key") == ("ner", "gain_low")
    assert not GAIN.match("results/headline.json:ner.entity_f1")
    found = [{"revision": "main", "ner gain": 0.0109, "ner gain_low": 0.0019, "ner gain_high": 0.0219},
             {"revision": "old", "ner gain": -0.02}]  # made before the headline had its interval
    md = table(found).splitlines()
    assert md[2:] == ["| ner pretrained − scratch (95% CI) | +1.09 (+0.19 to +2.19) | -2.00 |"]
    assert table(found, "csv").splitlines()[0] == "revision,preset,ner gain,ner gain_high,ner gain_low"


def test_ulmfit_without_the_slanted_triangle_follows_the_runs_scheduler(pretrained):
    import torch

    model = build_model(METHODS["full"], pretrained, SEQ, ["a", "b"], "last", seed=0)
    options = {"discriminative_decay": 1.0, "slanted_triangular": False}
    lrs = {}
    for name in ("linear", "cosine", "constant_with_warmup"):
        opt = torch.optim.AdamW(model.parameters(), lr=1.0)
        sched = ulmfit.scheduler(opt, options, name, total_steps=100, warmup_steps=10)
        for _ in range(55):
            opt.step()
            sched.step()
        lrs[name] = opt.param_groups[0]["lr"]
    assert lrs["linear"] == pytest.approx(0.5) and lrs["constant_with_warmup"] == pytest.approx(1.0)
    assert lrs["cosine"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))


def test_predict_batches_by_length_and_returns_rows_in_their_order(pretrained):
    import torch
    from datasets import Dataset

    from scratchlm.stages.evaluate import predict

    def pad(rows):
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.tensor([r["input_ids"] + [0] * (width - len(r["input_ids"])) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}

    rows = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16], [17], [18, 19, 20]]
    data = Dataset.from_dict({"input_ids": rows, "length": [len(r) for r in rows]})
    model = build_model(METHODS["full"], pretrained, SEQ, ["neg", "pos"], "concat", seed=0)
    alone = [predict(model, data.select([i]), pad, batch_size=1)[0] for i in range(len(rows))]
    together = predict(model, data, pad, batch_size=2)
    assert len(together) == len(rows)
    assert all(abs(a - b).max() < 1e-5 for a, b in zip(alone, together))


def _lines(labels, predictions):
    import json
    return [json.dumps({"label": t, "prediction": p}) for t, p in zip(labels, predictions)]


def test_the_collapse_flag_catches_one_class_for_all_or_nearly_all_examples():
    from scratchlm.stages.evaluate import collapsed

    balanced = [0, 1] * 50
    assert collapsed(_lines(balanced, [0] * 100))  # one class for every example
    assert collapsed(_lines(balanced, [0] * 98 + [1] * 2))  # a prompt whose scores barely move
    assert not collapsed(_lines(balanced, [0] * 90 + [1] * 10))
    assert not collapsed(_lines(balanced, balanced))
    skewed = [0] * 96 + [1] * 4  # a good run on a skewed test set predicts its skew
    assert not collapsed(_lines(skewed, [0] * 97 + [1] * 3))
    assert collapsed(_lines(skewed, [0] * 100))


def test_the_collapse_flag_on_ner_is_no_entity_at_all():
    import json

    from scratchlm.stages.evaluate import collapsed

    none = [json.dumps({"predicted": ["O", "O"]}), json.dumps({"predicted": ["O"]})]
    some = [json.dumps({"predicted": ["O", "B-PER"]}), json.dumps({"predicted": ["O"]})]
    assert collapsed(none) and not collapsed(some)


def curve(scores: list[float], metric: str = "eval_accuracy") -> list[dict]:
    """Trainer's log history: a training-loss entry, then an evaluation every 10 steps."""
    return [{"loss": 1.0, "step": 1, "epoch": 0.01}] + [{metric: s, "step": 10 * (i + 1), "epoch": 0.5 * (i + 1)}
                                                       for i, s in enumerate(scores)]


def test_the_stopped_while_improving_flag_fires_on_a_rising_curve_and_not_on_a_flat_one():
    from scratchlm.training import Selection, selected

    higher = Selection("eval_accuracy", True)
    assert selected(curve([0.5, 0.6, 0.7, 0.8]), higher) == {
        "selected_step": 40, "selected_epoch": 2.0, "evaluations": 4, "still_improving": True}
    flat = selected(curve([0.7, 0.7, 0.7, 0.7]), higher)
    assert not flat["still_improving"] and flat["selected_step"] == 10  # the first of equal scores
    assert not selected(curve([0.5, 0.8, 0.7, 0.6]), higher)["still_improving"]  # turned: early stopping's case
    assert not selected(curve([0.5, 0.6]), higher)["still_improving"]  # too few evaluations to say
    lower = Selection("eval_loss", False)  # a loss: improving is falling
    assert selected(curve([3.0, 2.0, 1.0], "eval_loss"), lower)["still_improving"]
    assert not selected(curve([1.0, 2.0, 3.0], "eval_loss"), lower)["still_improving"]
    assert selected([], higher)["evaluations"] == 0


def test_the_flag_reads_the_log_from_before_the_final_scoring():
    """fit() keeps Trainer's log as it stood when training stopped: the final evaluate() re-scores
    the restored best checkpoint at the last step, a tie with the best that would hide a rising end."""
    from scratchlm.training import Fitted, Selection

    rising = curve([0.5, 0.6, 0.7, 0.8])
    fitted = Fitted(None, {"eval_accuracy": 0.8}, {}, None, history=tuple(rising))
    assert fitted.selected(Selection("eval_accuracy", True))["still_improving"]
    with_final = Fitted(None, {}, {}, None, history=tuple(rising + [{"eval_accuracy": 0.8, "step": 40, "epoch": 2.0}]))
    assert not with_final.selected(Selection("eval_accuracy", True))["still_improving"]  # what the bug saw


@pytest.mark.parametrize("rows,batch,world,steps", [(6121, 32, 1, 576), (6121, 32, 1, 200), (100, 16, 1, 3),
                                                    (101, 8, 2, 20), (64, 32, 1, 2)])
def test_tokens_seen_counts_the_short_last_batch_of_each_epoch(rows, batch, world, steps):
    """Against a count batch by batch: each worker's share (padded to equal size), cut into
    batches, epoch after epoch, one batch per worker a step."""
    import math
    from types import SimpleNamespace

    from scratchlm.stages.pretrain import tokens_seen

    share = math.ceil(rows / world)
    epoch = [min(batch, share - i) for i in range(0, share, batch)]
    blocks = sum(epoch[s % len(epoch)] * world for s in range(steps))
    trainer = SimpleNamespace(args=SimpleNamespace(world_size=world, train_batch_size=batch),
                              state=SimpleNamespace(global_step=steps))
    assert tokens_seen(trainer, rows, 128) == blocks * 128
