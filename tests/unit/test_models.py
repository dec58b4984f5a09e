import pytest
import torch
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification)

from scratchlm.models import (RecurrentConfig, RecurrentForCausalLM, RecurrentForSequenceClassification,
                              RecurrentForTokenClassification, RecurrentModel)
from scratchlm.models.recurrent import pool


@pytest.fixture(params=["gru", "lstm", "rnn"])
def config(request):
    return RecurrentConfig(vocab_size=50, cell=request.param, embedding_size=12, hidden_size=16, num_layers=2,
                           dropout=0.0, num_labels=3)


def batch():
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    return ids, (ids != 0).long()


def test_heads_have_the_right_shapes(config):
    ids, mask = batch()
    assert RecurrentModel(config)(ids, mask).last_hidden_state.shape == (2, 4, 16)
    lm = RecurrentForCausalLM(config)(ids, mask, labels=ids)
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
    assert model.classifier.in_features == 3 * config.hidden_size
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
