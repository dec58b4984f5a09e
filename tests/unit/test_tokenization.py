import subprocess
import sys

import pytest
from datasets import ClassLabel

from scratchlm.stages import data, encode, pack, tokenizer
from scratchlm.tokenization import by_length


@pytest.fixture(scope="module")
def corpus(tiny_params):
    return data.build("corpus", tiny_params["data"]["datasets"]["corpus"], 42)[0]


@pytest.fixture(scope="module")
def tok(corpus):
    return tokenizer.train(corpus["train"], 400, 2)


def test_tokenizer_wraps_text_and_decodes_back(tok):
    enc = tok("Overall, it was not at all good.")
    assert enc["input_ids"][0] == tok.cls_token_id and enc["input_ids"][-1] == tok.sep_token_id
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "Overall, it was not at all good."


def test_word_ids_map_subwords_to_words(tok):
    words = ["Velquistaron", "joined", "Korvath", "Industries", "."]
    enc = tok(words, is_split_into_words=True)
    ids = enc.word_ids()
    assert ids[0] is None and ids[-1] is None
    assert [w for w in ids if w is not None] == sorted(w for w in ids if w is not None)
    assert set(w for w in ids if w is not None) == set(range(len(words)))


def test_align_labels_first_subtoken_only():
    assert encode.align_labels([None, 0, 0, 1, 2, 2, 2, None], [3, 0, 5]) == [-100, 3, -100, 0, 5, -100, -100, -100]


def test_classification_keeps_label_names_and_truncates(tok, tiny_params):
    dd, _ = data.build("sentiment", tiny_params["data"]["datasets"]["sentiment"], 1)
    out = encode.encode(dd, tok, "sequence-classification", max_length=32)
    assert isinstance(out["train"].features["labels"], ClassLabel)
    assert list(out["train"]["labels"]) == list(dd["train"]["label"])
    assert max(len(x) for x in out["train"]["input_ids"]) == 32
    assert set(out["train"].column_names) == {"input_ids", "length", "labels"}
    assert out["train"].features["input_ids"].feature.dtype == "int32"


def test_stage_ids_equal_transformers_tokenizer_call(tok, tiny_params):
    """The stage reads the Rust core's Encodings; what it keeps must be what tok(...) gives."""
    dd, _ = data.build("sentiment", tiny_params["data"]["datasets"]["sentiment"], 1)
    tok.backend_tokenizer.no_truncation()
    out = encode.encode(dd, tok, "sequence-classification", max_length=32)["train"]
    assert tok.backend_tokenizer.truncation is None  # the stage truncates on its own copy
    expected = tok(list(dd["train"]["text"]), truncation=True, max_length=32)["input_ids"]
    assert list(out["input_ids"]) == expected
    assert list(out["length"]) == [len(ids) for ids in expected]


def test_token_labels_equal_word_ids_alignment(tok, tiny_params):
    dd, _ = data.build("ner", tiny_params["data"]["datasets"]["ner"], 1)
    out = encode.encode(dd, tok, "token-classification", max_length=12)["train"]
    words, tags = list(dd["train"]["tokens"]), list(dd["train"]["ner_tags"])
    enc = tok(words, is_split_into_words=True, truncation=True, max_length=12)
    assert list(out["input_ids"]) == enc["input_ids"]
    assert list(out["labels"]) == [encode.align_labels(enc.word_ids(i), t) for i, t in enumerate(tags)]
    assert list(out["words"]) == words and list(out["word_tags"]) == tags
    assert out.features["word_tags"] == dd["train"].features["ner_tags"]


def test_pack_cuts_equal_blocks(tok, corpus):
    blocks = pack.pack(corpus, tok, 16)
    lengths = {len(b) for b in blocks["train"]["input_ids"]}
    assert lengths == {16}
    stream = [i for ids in tok(list(corpus["train"]["text"]))["input_ids"] for i in ids]
    assert len(blocks["train"]) == len(stream) // 16
    assert [i for b in blocks["train"]["input_ids"] for i in b] == stream[:len(stream) // 16 * 16]


TRAIN_AND_HASH = """
import hashlib, tempfile
from scratchlm.stages import data, tokenizer
spec = {"source": "synthetic", "generator": "corpus", "train": 300, "validation": 10, "test": 10, "coherence": 0.75,
        "negation": 0.5}
corpus = data.build("corpus", spec, 5)[0]
tok = tokenizer.train(corpus["train"], 300, 2)
d = tempfile.mkdtemp()
tok.save_pretrained(d)
print(hashlib.sha256(open(d + "/tokenizer.json", "rb").read()).hexdigest())
"""


def test_tokenizer_is_byte_identical_across_processes():
    """Every later hash depends on the tokenizer: two processes must write the same file."""
    hashes = {subprocess.run([sys.executable, "-c", TRAIN_AND_HASH], capture_output=True, text=True,
                             check=True).stdout.strip() for _ in range(2)}
    assert len(hashes) == 1 and len(next(iter(hashes))) == 64


@pytest.mark.parametrize("task_type", ["sequence-classification", "token-classification"])
def test_collator_pads_the_model_columns_and_rebuilds_the_mask(tok, tiny_params, task_type):
    """Tokenized rows carry `length` (and NER's words and tags) for the sampler and evaluation;
    the collator passes on input_ids and labels only, padded, with the mask padding makes."""
    from scratchlm.finetuning import collator

    name = "sentiment" if task_type == "sequence-classification" else "ner"
    dd, _ = data.build(name, tiny_params["data"]["datasets"][name], 1)
    rows = list(encode.encode(dd, tok, task_type, max_length=32)["train"].select(range(4)))
    batch = collator(task_type, tok)(rows)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["attention_mask"].sum(1).tolist() == [row["length"] for row in rows]
    assert batch["input_ids"].shape[1] == max(row["length"] for row in rows)


def test_by_length_orders_rows_and_inverts_the_order():
    lengths = [5, 2, 9, 2, 1]
    order, inverse = by_length(lengths)
    assert [lengths[i] for i in order] == [1, 2, 2, 5, 9]
    assert [order[i] for i in inverse] == list(range(len(lengths)))
