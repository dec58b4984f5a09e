"""The token-classification head's options: the CRF against brute-force enumeration, IOB2-valid
decoding, the character features of each word, and the head saved and loaded with its model."""

import itertools

import pytest
import torch

from scratchlm.models.tagging import CRF, MAX_CHARS, CharCNN, TaggingHead, iob2_allowed

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def valid(tags: list[int]) -> bool:
    start, trans = iob2_allowed(NAMES)
    return bool(start[tags[0]]) and all(trans[a, b] for a, b in zip(tags, tags[1:]))


def brute_force(crf: CRF, emissions: torch.Tensor, length: int):
    """Every tag sequence of the row's length: (log-sum-exp of their scores, the best one)."""
    scores = {}
    for tags in itertools.product(range(len(NAMES)), repeat=length):
        t = torch.tensor([list(tags) + [0] * (emissions.size(1) - length)])
        mask = torch.arange(emissions.size(1)).unsqueeze(0) < length
        scores[tags] = crf.score(emissions, t, mask).item()
    return torch.logsumexp(torch.tensor(list(scores.values())), 0).item(), max(scores, key=scores.get)


@pytest.fixture
def crf():
    torch.manual_seed(0)
    crf = CRF(NAMES)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


@pytest.mark.parametrize("length", [1, 2, 4])
def test_partition_function_and_viterbi_equal_brute_force(crf, length):
    torch.manual_seed(length)
    emissions = torch.randn(1, 4, len(NAMES))
    mask = torch.arange(4).unsqueeze(0) < length
    log_z, best = brute_force(crf, emissions, length)
    assert crf.log_partition(emissions, mask).item() == pytest.approx(log_z, rel=1e-5)
    assert crf.viterbi(emissions, mask)[0, :length].tolist() == list(best)
    assert valid(list(best))


def test_nll_is_minus_the_log_probability_of_the_gold_sequence(crf):
    emissions, tags = torch.randn(2, 3, len(NAMES)), torch.tensor([[1, 2, 0], [3, 4, 0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    expected = sum(brute_force(crf, emissions[i:i + 1], int(mask[i].sum()))[0]
                   - crf.score(emissions[i:i + 1], tags[i:i + 1], mask[i:i + 1]).item() for i in range(2)) / 2
    assert crf.nll(emissions, tags, mask).item() == pytest.approx(expected, rel=1e-5)


def test_viterbi_never_decodes_an_invalid_iob2_sequence(crf):
    """Emissions that shout I-PER after O, I-LOC after B-PER, I-PER at the start."""
    torch.manual_seed(1)
    for _ in range(50):
        emissions = torch.randn(3, 6, len(NAMES)) * 3
        emissions[:, :, 2] += 5  # I-PER everywhere
        emissions[:, 2, 4] += 12  # I-LOC in the middle
        decoded = crf.viterbi(emissions, torch.ones(3, 6, dtype=torch.bool))
        assert all(valid(row) for row in decoded.tolist())


def test_char_cnn_shapes_and_padding():
    torch.manual_seed(0)
    cnn = CharCNN(8, 5)
    chars = torch.zeros(2, 3, MAX_CHARS, dtype=torch.long)
    chars[0, 0, :3] = torch.tensor([66, 98, 99])  # "Abc" + 1
    chars[1, 0, :3] = torch.tensor([66, 98, 99])
    chars[1, 1, :2] = torch.tensor([50, 51])
    out = cnn(chars)
    assert out.shape == (2, 3, 5)
    assert torch.allclose(out[0, 0], out[1, 0])  # a word's features do not depend on its neighbours
    assert torch.equal(out[0, 1], torch.zeros(5)) and torch.equal(out[1, 2], torch.zeros(5))  # padding words


class Config:
    num_labels, id2label, vocab_size = len(NAMES), dict(enumerate(NAMES)), 0
    char_embedding, char_filters, tagger_hidden, crf, head_dropout = 8, 6, 4, True, 0.0


@pytest.fixture(scope="module")
def tokenizer(tiny_params):
    from scratchlm.stages import data, tokenizer

    corpus = data.build("corpus", tiny_params["data"]["datasets"]["corpus"], 3)[0]
    return tokenizer.train(corpus["train"], 300, 2)


@pytest.fixture
def head(tokenizer):
    config = Config()
    config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    head = TaggingHead(config, 7)
    head.set_vocabulary(tokenizer)
    return head.eval()


def test_words_start_where_the_data_labels_them_and_carry_their_bytes(head, tokenizer):
    words = ["Zorblat", "visited", "Quexhaven", "."]
    enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
    first = [i for i, (w, prev) in enumerate(zip(enc.word_ids(), [None, *enc.word_ids()])) if w is not None
             and w != prev]
    position, mask, index = head._words(enc["input_ids"], enc["attention_mask"], None)
    assert position[0, :mask.sum()].tolist() == first  # Metaspace's word starts are the data's words
    chars = head._chars(enc["input_ids"], index, mask.size(1))
    spelled = [bytes((c - 1 for c in row if c)).decode() for row in chars[0].tolist()]
    assert spelled == ["▁" + w for w in words]


def test_head_emits_one_tag_per_word_on_every_piece_and_decodes_valid_iob2(head, tokenizer):
    enc = tokenizer([["Zorblat", "visited", "Quexhaven"], ["Al", "ran"]], is_split_into_words=True,
                    padding=True, return_tensors="pt")
    states = torch.randn(*enc["input_ids"].shape, 7)
    loss, logits = head(states, enc["input_ids"], enc["attention_mask"])
    assert loss is None and logits.shape == (*enc["input_ids"].shape, len(NAMES))
    tags = head.decode(states, enc["input_ids"], enc["attention_mask"])
    for row in range(2):
        ids = enc.word_ids(row)
        for a, b in zip(range(len(ids)), range(1, len(ids))):
            if ids[a] is not None and ids[a] == ids[b]:
                assert tags[row, a] == tags[row, b]  # every piece of a word carries the word's tag
        assert all(tags[row, i] == -100 for i, w in enumerate(ids) if w is None)
        words = [int(tags[row, i]) for i, (w, prev) in enumerate(zip(ids, [None, *ids])) if w is not None and w != prev]
        assert valid(words)


def test_under_a_crf_the_logits_argmax_is_the_viterbi_path_outside_training_only(head, tokenizer):
    """What reads the argmax (the validation metric, checkpoint selection, pipelines) gets the
    CRF's decoding; training reads the emissions as they are."""
    enc = tokenizer([["Zorblat", "visited", "Quexhaven"], ["Al", "ran"]], is_split_into_words=True,
                    padding=True, return_tensors="pt")
    torch.manual_seed(1)
    states = torch.randn(*enc["input_ids"].shape, 7)
    with torch.no_grad():
        head.crf.transitions.normal_(0, 5)  # strong transitions: the path differs from the emissions' argmax
        tags = head.decode(states, enc["input_ids"], enc["attention_mask"])
        _, logits = head(states, enc["input_ids"], enc["attention_mask"])
        inside = tags != -100
        assert torch.equal(logits.argmax(-1)[inside], tags[inside])
        emissions = head._emissions(states, enc["input_ids"], enc["attention_mask"], None)[0]
        head.train()
        _, trained = head(states, enc["input_ids"], enc["attention_mask"])
        head.eval()
    index = head._words(enc["input_ids"], enc["attention_mask"], None)[2]
    assert torch.allclose(trained, emissions.gather(1, index.clamp(min=0).unsqueeze(2).expand(-1, -1, len(NAMES)))
                          * (index >= 0).unsqueeze(2))
    assert not torch.equal(trained.argmax(-1)[inside], tags[inside])  # the first check is not vacuous


def test_recurrent_and_bert_taggers_save_and_load_with_the_auto_classes(tmp_path, tokenizer):
    from transformers import AutoModelForTokenClassification, BertConfig

    from scratchlm.models import BertForTagging, BertTaggerConfig, RecurrentConfig, RecurrentForTokenClassification

    options = {"char_filters": 6, "char_embedding": 8, "tagger_hidden": 4, "crf": True,
               "num_labels": len(NAMES), "id2label": dict(enumerate(NAMES))}
    bert = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32).to_dict()
    for model in (RecurrentForTokenClassification(RecurrentConfig(vocab_size=len(tokenizer), hidden_size=8,
                                                                  embedding_size=8, **options)),
                  BertForTagging(BertTaggerConfig.from_dict({**bert, **options}))):
        model.head.set_vocabulary(tokenizer)
        folder = tmp_path / type(model).__name__
        model.save_pretrained(folder)
        loaded = AutoModelForTokenClassification.from_pretrained(folder).eval()
        assert type(loaded) is type(model)
        assert torch.equal(loaded.head.piece_bytes, model.head.piece_bytes)
        enc = tokenizer([["Zorblat", "visited"]], is_split_into_words=True, return_tensors="pt")
        assert torch.equal(loaded.decode(enc["input_ids"]), model.eval().decode(enc["input_ids"]))
        labels = torch.full_like(enc["input_ids"], -100)
        labels[0, 1] = 1
        assert loaded(**enc, labels=labels).loss.item() > 0


def test_a_head_new_over_a_language_model_is_initialised_and_its_table_filled_whole(tmp_path, tokenizer):
    """from_pretrained leaves what the checkpoint lacks uninitialised until _init_weights: the
    head's CNN, CRF and tables are initialised, and set_vocabulary writes every row (specials: no
    word), so a run is the same in every process."""
    from transformers import AutoModelForTokenClassification

    from scratchlm.models import RecurrentConfig, RecurrentForCausalLM

    RecurrentForCausalLM(RecurrentConfig(vocab_size=len(tokenizer), hidden_size=8, embedding_size=8)).save_pretrained(
        tmp_path)
    model = AutoModelForTokenClassification.from_pretrained(
        tmp_path, num_labels=len(NAMES), id2label=dict(enumerate(NAMES)), char_filters=4, crf=True)
    assert all(bool(torch.isfinite(p).all()) for p in model.head.parameters())  # the new head is initialised
    assert not model.head.crf.transitions.any() and not model.head.in_word.any()
    model.head.set_vocabulary(tokenizer)
    specials = tokenizer.all_special_ids
    assert not model.head.in_word[specials].any() and not model.head.piece_length[specials].any()
    assert not model.head.piece_bytes[specials].any()
