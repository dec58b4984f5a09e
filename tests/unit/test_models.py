import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from conftest import HUNG_AFTER_S
from scratchlm.models import (
    RecurrentConfig,
    RecurrentForCausalLM,
    RecurrentForSequenceClassification,
    RecurrentForTokenClassification,
    RecurrentModel,
)
from scratchlm.models.recurrent import pool, reverse_padded


@pytest.fixture(params=[("gru", False), ("lstm", False), ("rnn", False), ("gru", True), ("lstm", True)],
                ids=["gru", "lstm", "rnn", "bigru", "bilstm"])
def config(request):
    cell, bidirectional = request.param
    return RecurrentConfig(vocab_size=50, cell=cell, embedding_size=12, hidden_size=16, num_layers=2,
                           dropout=0.0, num_labels=3, bidirectional=bidirectional)


def batch():
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    return ids, (ids != 0).long()


def test_heads_have_the_right_shapes(config):
    ids, mask = batch()
    assert RecurrentModel(config)(ids, mask).last_hidden_state.shape == (2, 4, config.output_size)
    lm = RecurrentForCausalLM(config).eval()(ids, mask, labels=ids)
    assert lm.logits.shape == (2, 4, 50) and lm.loss.ndim == 0
    seq = RecurrentForSequenceClassification(config)(ids, mask, labels=torch.tensor([0, 2]))
    assert seq.logits.shape == (2, 3) and seq.loss.ndim == 0
    tok = RecurrentForTokenClassification(config)(ids, mask, labels=torch.tensor([[0, 1, 2, 0], [1, 1, -100, -100]]))
    assert tok.logits.shape == (2, 4, 3) and tok.loss.ndim == 0


def test_padding_does_not_change_a_sequence_result(config):
    model = RecurrentForSequenceClassification(config).eval()
    short = model(torch.tensor([[9, 10]]), torch.tensor([[1, 1]])).logits
    padded = model(torch.tensor([[9, 10, 0, 0]]), torch.tensor([[1, 1, 0, 0]])).logits
    assert torch.allclose(short, padded, atol=1e-6)


def test_the_task_reader_reads_embeddings_and_states_and_ignores_padding(config):
    config.reader_hidden, config.pooling = 5, "concat"
    model = RecurrentForSequenceClassification(config).eval()
    assert model.reader.input_size == config.embedding_size + config.output_size
    assert isinstance(model.reader, type(model.model.rnn)) and model.reader.bidirectional
    assert model.classifier.in_features == 3 * 2 * 5
    short = model(torch.tensor([[9, 10]]), torch.tensor([[1, 1]])).logits
    padded = model(torch.tensor([[9, 10, 0, 0]]), torch.tensor([[1, 1, 0, 0]])).logits
    assert torch.allclose(short, padded, atol=1e-6)
    layers = model.model(*batch(), output_hidden_states=True).hidden_states
    assert [x.size(-1) for x in layers] == [config.embedding_size, config.output_size]


def test_the_task_reader_saves_and_loads_with_the_model(tmp_path):
    config = RecurrentConfig(vocab_size=50, embedding_size=12, hidden_size=16, num_labels=2, reader_hidden=4)
    model = RecurrentForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    ids, mask = batch()
    assert loaded.config.reader_hidden == 4
    assert torch.equal(model(ids, mask).logits, loaded(ids, mask).logits)


def test_pooling_reads_only_real_tokens():
    hidden = torch.tensor([[[1.0], [2.0], [3.0]], [[4.0], [100.0], [100.0]]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert pool(hidden, mask, "last").squeeze(-1).tolist() == [3.0, 4.0]
    assert pool(hidden, mask, "mean").squeeze(-1).tolist() == [2.0, 4.0]
    assert pool(hidden, mask, "max").squeeze(-1).tolist() == [3.0, 4.0]
    assert pool(hidden, mask, "concat").tolist() == [[3.0, 3.0, 2.0], [4.0, 4.0, 4.0]]


def test_concat_pooling_widens_the_classifier(config):
    config.pooling = "concat"
    model = RecurrentForSequenceClassification(config)
    assert model.classifier.in_features == 3 * config.output_size
    ids, mask = batch()
    assert model(ids, mask).logits.shape == (2, 3)


def test_lm_head_is_tied_to_embeddings(config):
    model = RecurrentForCausalLM(config)
    assert model.lm_head.weight is model.model.embeddings.weight


def test_save_load_round_trip_through_auto_classes(config, tmp_path):
    ids, mask = batch()
    model = RecurrentForCausalLM(config).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert type(AutoConfig.from_pretrained(tmp_path)) is RecurrentConfig
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.equal(model(ids, mask).logits, loaded(ids, mask).logits)
    assert isinstance(AutoModel.from_pretrained(tmp_path), RecurrentModel)
    for auto in (AutoModelForSequenceClassification, AutoModelForTokenClassification):
        head = auto.from_pretrained(tmp_path, num_labels=3)
        assert torch.equal(head.model.embeddings.weight, model.model.embeddings.weight)


def test_generate_continues_a_prompt(config):
    model = RecurrentForCausalLM(config).eval()
    out = model.generate(torch.tensor([[5, 6]]), max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 6) and out[0, :2].tolist() == [5, 6]


def test_bad_cell_is_refused():
    with pytest.raises(ValueError, match="cell must be one of"):
        RecurrentConfig(cell="transformer")


def test_reverse_padded_reverses_within_each_length_and_is_an_involution():
    x = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    mask = (x != 0).long()
    assert reverse_padded(x, mask).tolist() == [[4, 3, 2, 1], [6, 5, 0, 0]]
    assert torch.equal(reverse_padded(reverse_padded(x, mask), mask), x)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_only_a_bidirectional_model_sees_the_right_context(bidirectional):
    config = RecurrentConfig(vocab_size=50, embedding_size=8, hidden_size=8, dropout=0.0, num_labels=3,
                             bidirectional=bidirectional)
    model = RecurrentForTokenClassification(config).eval()
    a, b = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[5, 6, 7, 9]])
    first = model(a).logits[0, 0], model(b).logits[0, 0]
    assert torch.allclose(*first) != bidirectional


def test_backward_lm_does_not_see_the_token_it_predicts():
    """Changing token t must not change the backward loss terms that predict token t: with the
    model's own output we check the backward state at position t+1 ignores token t."""
    config = RecurrentConfig(vocab_size=50, embedding_size=8, hidden_size=8, dropout=0.0, bidirectional=True)
    base = RecurrentModel(config).eval()
    a, b = torch.tensor([[5, 6, 7, 8, 9]]), torch.tensor([[5, 6, 30, 8, 9]])
    backward_a = base(a).last_hidden_state[0, :, 8:]
    backward_b = base(b).last_hidden_state[0, :, 8:]
    assert torch.allclose(backward_a[3:], backward_b[3:])  # positions right of the change: unaffected
    assert not torch.allclose(backward_a[2], backward_b[2])


def test_bert_encoder_builds_from_params_and_round_trips(tmp_path):
    from scratchlm.finetuning import build_model
    from scratchlm.methods import METHODS
    from scratchlm.models import pretraining_model

    class Tok:
        pad_token_id = 0

        def __len__(self):
            return 60

    spec = {"arch": "bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32,
            "dropout": 0.1, "pretraining_dropout": 0.0, "max_position": 64, "mlm_probability": 0.15}
    mlm = pretraining_model(spec, Tok())
    rates = lambda model: {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}  # noqa: E731
    assert rates(mlm) == {0.0}  # pretraining without dropout ...
    ids = torch.tensor([[2, 10, 11, 3]])
    assert mlm(ids).logits.shape == (1, 4, 60)
    assert mlm(ids, labels=torch.tensor([[-100, 10, -100, -100]])).logits.shape == (1, 60)  # masked rows only
    mlm.save_pretrained(tmp_path)
    frozen = build_model(METHODS["frozen"], tmp_path, "sequence-classification", ["a", "b"], "concat", seed=0)
    trainable = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert trainable == {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"}
    assert frozen(ids).logits.shape == (1, 2)
    assert rates(frozen) == {0.1} and mlm.config.hidden_dropout_prob == 0.1  # ... fine-tuning with it
    assert rates(pretraining_model({**spec, "pretraining_dropout": None}, Tok())) == {0.1}


def test_sparse_masked_lm_has_the_full_heads_loss_gradients_and_weights(tmp_path):
    from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

    from scratchlm.models.bert import BertForSparseMaskedLM

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    full, sparse = BertForMaskedLM(config).eval(), BertForSparseMaskedLM(config).eval()
    sparse.load_state_dict(full.state_dict())
    ids = torch.randint(5, 50, (3, 8))
    labels = torch.where(torch.rand(3, 8) < 0.3, ids, -100)
    labels[0, 0] = ids[0, 0]  # at least one masked position
    a, b = full(ids, labels=labels), sparse(ids, labels=labels)
    a.loss.backward()
    b.loss.backward()
    assert torch.allclose(a.loss, b.loss, atol=1e-6)
    assert torch.allclose(a.logits[labels != -100], b.logits, atol=1e-5)
    for (name, p), q in zip(full.named_parameters(), sparse.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    sparse.save_pretrained(tmp_path)  # a plain BERT checkpoint to the Auto classes
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert torch.allclose(loaded(ids).logits, full(ids).logits, atol=1e-5)


def test_state_saturation_counts_states_beyond_the_threshold():
    from scratchlm.lm import state_saturation
    from scratchlm.models import RecurrentConfig, RecurrentForCausalLM

    lm = RecurrentForCausalLM(RecurrentConfig(vocab_size=30, embedding_size=8, hidden_size=8))
    blocks = {"input_ids": torch.randint(1, 30, (5, 12)).tolist()}
    assert state_saturation(lm, blocks) < 0.05  # small random weights: states near zero
    with torch.no_grad():  # GRU gates in rows [r; z; n]: update gate shut (z ~ 0), candidate saturated
        rnn, h = lm.model.rnn, 8
        rnn.weight_ih_l0[h:2 * h].zero_()
        rnn.bias_ih_l0[h:2 * h].fill_(-50.0)
        rnn.bias_ih_l0[2 * h:].fill_(50.0)
    assert state_saturation(lm, blocks) > 0.95


@pytest.mark.parametrize("chunk_elements", [11 * 4, 2 ** 21])  # 4 rows a chunk (several), or all in one
def test_lm_loss_and_gradients_equal_torch_cross_entropy(monkeypatch, chunk_elements):
    """The fused output layer and cross-entropy: F.cross_entropy of features @ weight.T on the
    shifted labels, value and both gradients, with ignored (-100) labels among them."""
    from scratchlm.models import recurrent

    monkeypatch.setattr(recurrent, "LOSS_CHUNK_ELEMENTS", chunk_elements)
    torch.manual_seed(0)
    features = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 11, (3, 7))
    labels[1, 2:] = -100
    ours = recurrent._next_token_loss(features, weight, labels)
    grads_ours = torch.autograd.grad(3 * ours, (features, weight))
    shifted = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
    theirs = torch.nn.functional.cross_entropy((features @ weight.T).reshape(-1, 11), shifted.reshape(-1),
                                               ignore_index=-100)
    grads_theirs = torch.autograd.grad(3 * theirs, (features, weight))
    assert torch.allclose(ours, theirs, atol=1e-12)
    for a, b in zip(grads_ours, grads_theirs):
        assert torch.allclose(a, b, atol=1e-12)


def test_lm_loss_under_bf16_autocast_follows_the_fp32_one():
    """Under CPU autocast the logits are computed in bf16 and the softmax in fp32: the loss and
    the gradients stay within bf16's rounding of the fp32 ones, in the inputs' dtypes."""
    from scratchlm.models.recurrent import _next_token_loss

    torch.manual_seed(0)
    features = torch.randn(2, 9, 16, requires_grad=True)
    weight = (0.3 * torch.randn(50, 16)).requires_grad_()
    labels = torch.randint(0, 50, (2, 9))
    exact = _next_token_loss(features, weight, labels)
    exact_grads = torch.autograd.grad(exact, (features, weight))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_features = features.to(torch.bfloat16)
        low = _next_token_loss(low_features, weight, labels)
    low_grads = torch.autograd.grad(low, (features, weight))
    assert low.dtype == torch.float32 and [g.dtype for g in low_grads] == [torch.float32] * 2
    assert abs(low.item() - exact.item()) < 0.02
    for a, b in zip(low_grads, exact_grads):
        assert (a - b).abs().max() < 0.02 * b.abs().max()


def test_lm_loss_without_grad_mode_computes_no_gradients(monkeypatch):
    """Evaluation (torch.no_grad) gets the same loss without the gradient work, although the
    output layer's weight still requires grad (autograd's needs_input_grad would say it does)."""
    from scratchlm.models import recurrent

    asked = []
    real = recurrent._linear_cross_entropy
    monkeypatch.setattr(recurrent, "_linear_cross_entropy",
                        lambda *a, grads: asked.append(grads) or real(*a, grads=grads))
    features, weight = torch.randn(2, 6, 4), torch.randn(13, 4, requires_grad=True)
    labels = torch.randint(0, 13, (2, 6))
    with torch.no_grad():
        evaluated = recurrent._next_token_loss(features, weight, labels)
    trained = recurrent._next_token_loss(features, weight, labels)
    assert asked == [False, True] and torch.equal(evaluated, trained.detach())


def _reference_sampled_loss(features, weight, labels, k, seed):
    """Sampled softmax row by row in float64: the draws replayed from the same seed (half from
    the targets, half uniform), each class's logit less the log of its chance to be drawn, a
    row's own target never among its negatives."""
    import math

    shifted = [torch.nn.functional.pad(y[:, 1:], (0, 1), value=-100).reshape(-1) for y in labels]
    rows = torch.cat([f.reshape(-1, f.size(-1)) for f in features]).double()
    targets = torch.cat(shifted)
    rows, targets = rows[targets != -100], targets[targets != -100]
    n, vocabulary = len(targets), weight.size(0)
    torch.manual_seed(seed)
    drawn = set(targets[torch.randint(n, (k - k // 2,))].tolist()) | set(torch.randint(vocabulary, (k // 2,)).tolist())

    def logit(row, c):
        share = (targets == c).sum().item() / n
        chance = 1 - (1 - share) ** (k - k // 2) * (1 - 1 / vocabulary) ** (k // 2)
        return row @ weight[c].double() - math.log(chance)

    total = 0.0
    for row, y in zip(rows, targets.tolist()):
        scores = torch.stack([logit(row, y)] + [logit(row, c) for c in sorted(drawn) if c != y])
        total += (scores.logsumexp(0) - scores[0]).item()
    return total / n


def test_sampled_softmax_loss_matches_a_row_by_row_reference():
    """Both directions' positions in one loss, ignored labels left out, accidental hits removed."""
    from scratchlm.models.recurrent import _sampled_next_token_loss

    torch.manual_seed(0)
    features = [torch.randn(3, 7, 5, dtype=torch.float64) for _ in range(2)]
    weight = torch.randn(40, 5, dtype=torch.float64)
    labels = [torch.randint(0, 40, (3, 7)) for _ in range(2)]
    labels[1][1, 3:] = -100
    torch.manual_seed(7)
    ours = _sampled_next_token_loss(features, weight, labels, num_sampled=9)
    reference = _reference_sampled_loss(features, weight, labels, 9, seed=7)
    assert ours.item() == pytest.approx(reference, rel=1e-6)  # the loss computes in fp32


def test_sampled_softmax_drawing_every_class_is_the_full_softmax():
    """With draws enough to include every class (each chance 1), the estimate is the exact
    softmax, value and gradients (the fused full-softmax loss is the reference)."""
    from scratchlm.models.recurrent import _next_token_loss, _sampled_next_token_loss

    torch.manual_seed(0)
    features = torch.randn(2, 6, 4, requires_grad=True)
    weight = torch.randn(30, 4, requires_grad=True)
    labels = torch.randint(0, 30, (2, 6))
    labels[1, 4:] = -100
    ours = _sampled_next_token_loss([features], weight, [labels], num_sampled=100_000)
    grads = torch.autograd.grad(ours, (features, weight))
    exact = _next_token_loss(features, weight, labels)
    for a, b in zip(grads, torch.autograd.grad(exact, (features, weight))):
        assert torch.allclose(a, b, atol=1e-5)
    assert ours.item() == pytest.approx(exact.item(), rel=1e-5)


def test_sampled_softmax_gradients_reproduce_to_the_byte_on_two_threads():
    """The output layer's gradient sums the rows of repeated classes in a fixed order (indexing
    with weight[...] did not, on 2 threads: each pass a different last bit)."""
    from scratchlm.models.recurrent import _sampled_next_token_loss

    torch.manual_seed(0)
    features = [torch.randn(16, 128, 64) for _ in range(2)]
    weight, labels = torch.randn(2000, 64), [torch.randint(0, 2000, (16, 128)) for _ in range(2)]
    threads, grads = torch.get_num_threads(), []
    torch.set_num_threads(2)
    try:
        for _ in range(3):
            torch.manual_seed(5)
            w = weight.clone().requires_grad_()
            _sampled_next_token_loss(features, w, labels, num_sampled=512).backward()
            grads.append(w.grad)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(grads[0], g) for g in grads[1:])


def test_draw_chances_match_the_drawing_it_describes():
    """Each class's chance to be among the draws (half from the targets, half uniform), against
    how often 4,000 simulated drawings, made as the loss makes them, hold it."""
    from scratchlm.models.recurrent import draw_chances

    torch.manual_seed(0)
    targets = torch.tensor([0] * 12 + [1] * 6 + [2] * 2)  # shares 0.6, 0.3, 0.1; classes 3-7 never targets
    k, vocabulary, trials = 4, 8, 4000
    held = torch.zeros(vocabulary)
    for _ in range(trials):
        drawn = torch.cat([targets[torch.randint(len(targets), (k - k // 2,))], torch.randint(vocabulary, (k // 2,))])
        held[drawn.unique()] += 1
    assert torch.allclose(held / trials, draw_chances(targets, vocabulary, k).float(), atol=0.03)


def test_lm_trains_on_the_sampled_loss_and_evaluates_on_the_exact_one(tmp_path):
    """The sampled softmax is the pretraining stage's choice: training uses it, evaluation does
    not, and the saved model (config.json too) knows nothing of it."""
    base = dict(vocab_size=40, cell="lstm", embedding_size=8, hidden_size=8, dropout=0.0, bidirectional=True)
    torch.manual_seed(0)
    exact = RecurrentForCausalLM(RecurrentConfig(**base))
    sampled = RecurrentForCausalLM(RecurrentConfig(**base))
    sampled.load_state_dict(exact.state_dict())
    sampled.sampled_softmax = 6
    ids = torch.randint(1, 40, (3, 9))
    assert torch.equal(sampled.eval()(ids, labels=ids).loss, exact.eval()(ids, labels=ids).loss)
    torch.manual_seed(3)
    trained = sampled.train()(ids, labels=ids).loss
    torch.manual_seed(3)  # the draws come from torch's generator: seeded runs repeat
    assert torch.equal(trained, sampled(ids, labels=ids).loss)
    full = exact.train()(ids, labels=ids).loss
    assert torch.isfinite(trained) and abs(trained.item() - full.item()) > 1e-3
    trained.backward()  # the sampled loss trains the recurrent weights too
    assert sampled.model.rnn.weight_hh_l0.grad.abs().sum() > 0
    sampled.save_pretrained(tmp_path)
    assert "sampled_softmax" not in (tmp_path / "config.json").read_text()
    assert RecurrentForCausalLM.from_pretrained(tmp_path).sampled_softmax == 0


def test_lm_skips_its_logits_only_when_training_with_labels():
    from scratchlm.models import RecurrentConfig, RecurrentForCausalLM

    lm = RecurrentForCausalLM(RecurrentConfig(vocab_size=30, embedding_size=8, hidden_size=8, bidirectional=True))
    ids = torch.randint(0, 30, (2, 6))
    assert lm.train()(ids, labels=ids).logits is None
    assert lm.train()(ids, labels=ids, skip_logits=False).logits.shape == (2, 6, 30)
    assert lm.eval()(ids, labels=ids).logits.shape == (2, 6, 30)
    assert lm.train()(ids).logits.shape == (2, 6, 30)


def test_awd_regularisers_act_in_training_only_and_keep_their_shapes():
    """Embedding dropout drops whole word types, variational dropout one mask per sequence over
    time, weight drop the hidden-to-hidden weights; in eval mode the model is the plain one."""
    import torch

    from scratchlm.models import RecurrentConfig, RecurrentForCausalLM

    base = dict(vocab_size=50, cell="lstm", embedding_size=8, hidden_size=8, dropout=0.5)
    torch.manual_seed(0)
    plain = RecurrentForCausalLM(RecurrentConfig(**base))
    awd = RecurrentForCausalLM(RecurrentConfig(**base, embedding_dropout=0.3, weight_drop=0.5, variational=True))
    awd.load_state_dict(plain.state_dict())
    x = torch.randint(5, 50, (3, 12))
    plain.eval(), awd.eval()
    assert torch.equal(plain(x).logits, awd(x).logits)
    awd.train()
    embedded = awd.model._embed(torch.tensor([[7, 7, 7, 9]]))
    assert torch.equal(embedded[0, 0], embedded[0, 1]) and torch.equal(embedded[0, 1], embedded[0, 2])
    dropped = awd.model._drop(torch.ones(2, 5, 8))
    assert torch.equal(dropped[:, 0], dropped[:, 4]) and not torch.equal(dropped[0], dropped[1])  # per sequence
    loss = awd(x, labels=x).loss
    loss.backward()
    assert awd.model.rnn.weight_hh_l0.grad.abs().sum() > 0  # the gradient reaches the raw weights


def test_import_scratchlm_registers_the_family_without_importing_torch():
    """`import scratchlm` is all transformers' Auto classes need, yet costs no torch import (the
    CLI's --help stays fast): the registration waits for transformers' Auto model classes to load."""
    import subprocess
    import sys

    code = ("import sys, scratchlm\nassert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
            "from transformers import AutoConfig, AutoModel\n"
            "print(type(AutoConfig.for_model('scratchlm-recurrent')).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HUNG_AFTER_S)
    assert out.returncode == 0 and out.stdout.strip() == "RecurrentConfig", out.stderr


def test_activation_penalties_match_awd_lstm_and_act_in_lm_training_only():
    """AR is the mean square of the dropped states, TAR of the change between neighbouring raw
    states, both over real positions only; they add to the LM's loss in training, not in eval."""
    import torch

    from scratchlm.models import RecurrentConfig, RecurrentForCausalLM
    from scratchlm.models.recurrent import activation_penalty

    raw = torch.tensor([[[1.0, 1.0], [3.0, 1.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])  # the third position is padding
    assert activation_penalty(raw, raw, mask, 2.0, 0.0).item() == 2.0 * (1 + 5) / 2
    assert activation_penalty(raw, raw, mask, 0.0, 1.0).item() == 1.0 * (4 + 0) / 2 / 1
    assert activation_penalty(raw, raw, None, 0.0, 1.0).item() == (2.0 + (36 + 64) / 2) / 2
    assert activation_penalty(raw, raw, mask, 0.0, 0.0) == 0.0

    base = dict(vocab_size=50, cell="gru", embedding_size=8, hidden_size=8, dropout=0.0)
    torch.manual_seed(0)
    plain = RecurrentForCausalLM(RecurrentConfig(**base))
    regular = RecurrentForCausalLM(RecurrentConfig(**base, activation_reg=2.0, temporal_activation_reg=1.0))
    regular.load_state_dict(plain.state_dict())
    x = torch.randint(5, 50, (3, 12))
    plain.eval(), regular.eval()
    assert torch.equal(plain(x, labels=x).loss, regular(x, labels=x).loss)
    plain.train(), regular.train()
    states = plain.model(x).last_hidden_state
    expected = plain(x, labels=x).loss + activation_penalty(states, states, None, 2.0, 1.0)
    assert torch.allclose(regular(x, labels=x).loss, expected)


def test_bert_trains_with_the_attention_kernel_of_its_device_and_saves_none():
    """Eager softmax on the CPU, SDPA elsewhere; LoRA-wrapped and tagging BERTs alike; a recurrent
    model untouched; the choice is not written to the saved config (a runtime choice)."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import BertConfig, BertForSequenceClassification

    from scratchlm.models.bert import BertForTagging, BertTaggerConfig, use_training_attention

    sizes = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    tagger = BertForTagging(BertTaggerConfig(**sizes, num_labels=3, crf=True, tagger_hidden=8))
    classifier = BertForSequenceClassification(BertConfig(**sizes))
    wrapped = get_peft_model(classifier, LoraConfig(task_type=TaskType.SEQ_CLS, r=2, target_modules=["query"]))
    for model, inner in ((tagger, tagger.bert), (wrapped, classifier.bert)):
        use_training_attention(model, "cpu")
        assert inner.config._attn_implementation == "eager"
        use_training_attention(model, "cuda")
        assert inner.config._attn_implementation == "sdpa"
    use_training_attention(tagger, "cpu")
    assert "attn_implementation" not in tagger.config.to_json_string()
    recurrent = RecurrentForCausalLM(RecurrentConfig(vocab_size=50, embedding_size=8, hidden_size=8))
    use_training_attention(recurrent, "cpu")  # nothing to choose, nothing raised


def test_both_attention_kernels_give_the_same_loss_and_gradients():
    """The kernel is a speed choice only: eager and SDPA agree (padding mask included)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=32)).eval()
    ids, mask = batch()
    found = []
    for kernel in ("eager", "sdpa"):
        model.set_attn_implementation(kernel)
        model.zero_grad()
        loss = model(ids, attention_mask=mask, labels=torch.tensor([0, 1])).loss
        loss.backward()
        found.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (a, grads_a), (b, grads_b) = found
    assert torch.allclose(a, b, atol=1e-6)
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(grads_a, grads_b))
