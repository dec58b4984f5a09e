"""The benchmark's data: real SST-2 and the IMDB unsup corpus from ../shared/data when present,
our synthetic generators otherwise (users of the project do not have that folder), and the
one tokenizer every contender shares."""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

LABELS = ["negative", "positive"]  # SST-2's 0/1, and the synthetic sentiment labels


@dataclass
class Labelled:
    """A sentiment task: training and validation texts with 0/1 labels, and where they came from."""
    source: str
    train_texts: list[str]
    train_labels: list[int]
    dev_texts: list[str]
    dev_labels: list[int]


def _glue_tsv(path: Path, limit: int | None) -> tuple[list[str], list[int]]:
    """GLUE's TSV: header `sentence<TAB>label`, no quoting, a trailing space before the tab."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = islice(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE), limit)
        pairs = [(r["sentence"].strip(), int(r["label"])) for r in rows]
    return [t for t, _ in pairs], [y for _, y in pairs]


def _synthetic_sentiment(seed: int, n: int) -> tuple[list[str], list[int]]:
    from scratchlm.sources.synthetic import sentiment_examples

    rows = list(sentiment_examples(seed, n))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def sentiment(data_dir: Path, train: int | None, dev: int | None, synthetic_train: int, seed: int) -> Labelled:
    """SST-2 train/dev (at most `train`/`dev` rows; None: all), or synthetic reviews of the
    same shape when the folder is absent."""
    folder = data_dir / "sst2"
    if (folder / "train.tsv").is_file() and (folder / "dev.tsv").is_file():
        return Labelled(f"SST-2 ({folder})", *_glue_tsv(folder / "train.tsv", train),
                        *_glue_tsv(folder / "dev.tsv", dev))
    return Labelled("synthetic sentiment (scratchlm.sources.synthetic)",
                    *_synthetic_sentiment(seed, train or synthetic_train),
                    *_synthetic_sentiment(seed + 1, dev or 872))


def corpus(data_dir: Path, n: int, seed: int) -> tuple[str, list[str]]:
    """(source, the first `n` texts) of IMDB's 50k unlabelled reviews, or of our synthetic corpus."""
    path = data_dir / "imdb" / "unsup.jsonl.gz"
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f"IMDB unsup ({path})", [json.loads(line)["text"] for line in islice(f, n)]
    from scratchlm.sources.synthetic import corpus_examples

    return "synthetic corpus (scratchlm.sources.synthetic)", [r["text"] for r in corpus_examples(seed, n)]


def tokenizer(texts: list[str], vocab_size: int):
    """Our tokenizer stage's trainer (scratchlm.stages.tokenizer.train) on the task's training text."""
    from datasets import Dataset

    from scratchlm.stages.tokenizer import train

    return train(Dataset.from_dict({"text": texts}), vocab_size=vocab_size, min_frequency=2)
