"""The trained tokenizer as the stages use it: loading it, the fast tokenizer's Rust core for
batched encoding, and what a tokenized task dataset carries (its label names, its token count)."""

from __future__ import annotations

from pathlib import Path

from . import paths
from .atomic import upstream
from .errors import cannot_load

SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
            "sep_token": "[SEP]", "mask_token": "[MASK]"}
IGNORE = -100  # the label cross-entropy skips (transformers' convention)


def load(path: Path | str = paths.TOKENIZER):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(upstream(path, "tokenizer"))


def from_checkpoint(name: str, revision: str, key: str):
    """A hub (or local directory) checkpoint's tokenizer, or one line saying why not."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, revision=revision)
    except Exception as e:  # offline, unknown id, missing files: all end the same way
        raise cannot_load(f"{key} = {name!r}", e,
                          "Point it at a local copy (a directory from save_pretrained), or set it to null") from None


def encoder(tok, max_length: int | None = None):
    """The fast tokenizer's Rust core (a copy: truncation is its state), truncating at
    `max_length`. Its Encodings give the ids directly; transformers' __call__ would also build
    Python lists of the attention mask and other fields for every row, a third of the stage's
    time on short texts (measured on SST-2). Where only the ids are needed, `encode_batch_fast`
    skips tracking character offsets: the same ids sooner (see docs/performance.md). Word ids
    need the offsets, so NER keeps `encode_batch`."""
    from tokenizers import Tokenizer

    core = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    core.no_padding()
    if max_length is None:
        core.no_truncation()
    else:
        core.enable_truncation(max_length)
    return core


def label_names(dataset) -> list[str]:
    """The task's label (or tag) names, from the typed column of a tokenized split."""
    if "word_tags" in dataset.column_names:
        return dataset.features["word_tags"].feature.names
    return dataset.features["labels"].names


def by_length(lengths: list[int]) -> tuple[list[int], list[int]]:
    """(an order of the rows by length, and its inverse): predicting in that order pads each batch
    to rows of about its own length, where the data's order padded the demo's sentiment reviews
    (median 43 pieces, longest 256) to the longest of 64 random ones."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    inverse = [0] * len(order)
    for position, row in enumerate(order):
        inverse[row] = position
    return order, inverse


def count_tokens(dd) -> int:
    """Tokens in every split, summed in Arrow (no Python lists)."""
    import pyarrow.compute as pc

    return sum(pc.sum(pc.list_value_length(dd[s].data.column("input_ids"))).as_py() or 0 for s in dd)
