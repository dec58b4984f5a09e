"""Stage `tokenize`: batched `datasets.map` of one task's dataset with the trained tokenizer into
data/tokenized/<task>, by task type:

- sequence-classification: input_ids truncated to `max_length`, and the labels (their ClassLabel
  names kept); padding is left to the collator (dynamic, per batch), not done here.
- token-classification: words split by `is_split_into_words`, the word's tag on its first
  sub-token and -100 on the rest and on [CLS]/[SEP] (run_ner.py's alignment); the words and
  their tags (`words`, `word_tags`, typed) are kept, so evaluation scores every word, even one
  cut off by truncation.

Per task rather than per dataset: what to tokenize and how to align labels is the task's
business, and two tasks may read one dataset differently.
"""

from __future__ import annotations

import time
from pathlib import Path

from .io import atomic_path, upstream

IGNORE = -100  # the label cross-entropy skips (transformers' convention)


def tokenized_dir(task: str) -> Path:
    return Path("data/tokenized") / task


def _classification(tok, max_length: int):
    def fn(batch):
        enc = tok(batch["text"], truncation=True, max_length=max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": batch["label"]}
    return fn


def align_labels(word_ids: list[int | None], word_tags: list[int]) -> list[int]:
    """The word's tag on its first sub-token; -100 on continuation pieces and special tokens."""
    labels, previous = [], None
    for w in word_ids:
        labels.append(IGNORE if w is None or w == previous else word_tags[w])
        previous = w
    return labels


def _token_classification(tok, max_length: int):
    def fn(batch):
        enc = tok(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        labels = [align_labels(enc.word_ids(i), tags) for i, tags in enumerate(batch["ner_tags"])]
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels,
                "words": batch["tokens"], "word_tags": batch["ner_tags"]}
    return fn


def tokenize(dd, tok, task_type: str, max_length: int):
    if task_type == "sequence-classification":
        fn, typed = _classification(tok, max_length), {"labels": dd["train"].features["label"]}
    else:
        fn, typed = _token_classification(tok, max_length), {"word_tags": dd["train"].features["ner_tags"]}
    out = dd.map(fn, batched=True, batch_size=1000, remove_columns=dd["train"].column_names,
                 desc=f"tokenize ({task_type})")
    for column, feature in typed.items():
        out = out.cast_column(column, feature)
    return out


def label_names(dataset) -> list[str]:
    """The task's label (or tag) names, from the typed column of a tokenized split."""
    if "word_tags" in dataset.column_names:
        return dataset.features["word_tags"].feature.names
    return dataset.features["labels"].names


def count_tokens(dd) -> int:
    """Tokens in every split, summed in Arrow (no Python lists)."""
    import pyarrow.compute as pc

    return sum(pc.sum(pc.list_value_length(dd[s].data.column("input_ids"))).as_py() or 0 for s in dd)


def run(params: dict, task: str) -> dict:
    from datasets import load_from_disk

    from .data import raw_dir
    from .tokenizer import load

    spec = params["tasks"][task]
    raw = load_from_disk(upstream(raw_dir(spec["dataset"]), f"data --dataset {spec['dataset']}"))
    tok = load()
    start = time.perf_counter()
    out = tokenize(raw, tok, spec["type"], params["tokenize"]["max_length"])
    seconds = time.perf_counter() - start
    with atomic_path(tokenized_dir(task), is_dir=True) as tmp:
        out.save_to_disk(str(tmp))
    print(f"tokenize: {task}: " + ", ".join(f"{s} {len(out[s])} rows" for s in out))
    tokens = count_tokens(out)
    return {"tokens": tokens, "tokens_per_second": round(tokens / max(seconds, 1e-9), 1)}
