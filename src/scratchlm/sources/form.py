"""The one on-disk form every source produces: a DatasetDict of these splits, with typed
canonical columns by kind, and the seed each split is drawn with."""

from __future__ import annotations

import zlib

from datasets import ClassLabel, Features, Sequence, Value

SPLITS = ("train", "validation", "test")
DOCUMENT = "__document__"  # a source row's document number, where its file has documents (CoNLL)


def split_seed(seed: int, name: str, split: str) -> int:
    # stable across processes (unlike hash()), distinct per dataset and split
    return zlib.crc32(f"{seed}/{name}/{split}".encode())


def features(kind: str, label_names: list[str]):
    """classification: `text`, `label` (ClassLabel); ner: `tokens`, `ner_tags` (Sequence of
    ClassLabel, strict IOB2); corpus: `text`."""
    if kind == "classification":
        return Features({"text": Value("string"), "label": ClassLabel(names=label_names)})
    if kind == "ner":
        return Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=label_names))})
    return Features({"text": Value("string")})
