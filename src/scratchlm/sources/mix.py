"""The `mix` source: a corpus made of the text of several datasets (its parts), split by split.
Each part is built as a dataset of its own (by the data stage's `build`, passed in), so a part
with the name and spec of a task's dataset has that dataset's splits, and only its training rows
join the corpus's train split. Parts are hub or local datasets (checks.py): a data job's code
dependencies are its source's module and the stage's own, which hold those readers."""

from __future__ import annotations

from typing import Callable

from datasets import Dataset

from .form import SPLITS, features


def texts(ds) -> list[str]:
    """A split's text: a classification or corpus text, or an NER sentence's words joined."""
    if "tokens" in ds.column_names:
        return [" ".join(tokens) for tokens in ds["tokens"]]
    return list(ds["text"])


def combine(spec: dict, seed: int, build: Callable) -> tuple[dict, dict]:
    """({split: corpus Dataset}, provenance) of a mix: its parts' text, part after part."""
    found, info = {split: [] for split in SPLITS}, {"parts": {}}
    for part, sub in spec["parts"].items():
        dd, part_info = build(part, sub, seed)
        for split in SPLITS:
            found[split] += texts(dd[split])
        info["parts"][part] = {"rows": {split: len(dd[split]) for split in SPLITS}, **part_info}
    corpus = features("corpus", [])
    return {split: Dataset.from_dict({"text": rows}, features=corpus) for split, rows in found.items()}, info
