"""Stage `encode`: batched `datasets.map` of one task's dataset with the trained tokenizer into
data/encoded/<task>, by task type:

- sequence-classification: input_ids truncated to `max_length`, and the labels (their ClassLabel
  names kept); padding is left to the collator (dynamic, per batch), not done here.
- token-classification: the words encoded as given (pre-split), the word's tag on its first
  sub-token and -100 on the rest and on [CLS]/[SEP] (run_ner.py's alignment); the words and
  their tags (`words`, `word_tags`, typed) are kept, so evaluation scores every word, even one
  cut off by truncation.

Every row also gets its `length`, which fine-tuning's length-grouped sampler reads instead of
walking the whole dataset. No attention_mask is stored: it is all ones before padding, and the
collators rebuild it when they pad. Ids are int32: 4 bytes a token written and read back where
int64 ids and a mask took 16.

Per task rather than per dataset: what to encode and how to align labels is the task's
business, and two tasks may read one dataset differently.
"""

from __future__ import annotations

import time

from datasets import Features, Sequence, Value, load_from_disk

from .. import paths
from ..atomic import atomic_path, upstream
from ..tokenization import IGNORE, count_tokens, encoder, load


def _ids_features(**columns):
    return Features({"input_ids": Sequence(Value("int32")), "length": Value("int32"), **columns})


def _classification(core):
    def fn(batch):
        ids = [e.ids for e in core.encode_batch_fast(batch["text"])]
        return {"input_ids": ids, "length": [len(x) for x in ids], "labels": batch["label"]}
    return fn


def align_labels(word_ids: list[int | None], word_tags: list[int]) -> list[int]:
    """The word's tag on its first sub-token; -100 on continuation pieces and special tokens."""
    labels, previous = [], None
    for w in word_ids:
        labels.append(IGNORE if w is None or w == previous else word_tags[w])
        previous = w
    return labels


def _token_classification(core):
    def fn(batch):
        encodings = core.encode_batch(batch["tokens"], is_pretokenized=True)
        ids = [e.ids for e in encodings]
        return {"input_ids": ids, "length": [len(x) for x in ids],
                "labels": [align_labels(e.word_ids, tags) for e, tags in zip(encodings, batch["ner_tags"])],
                "words": batch["tokens"], "word_tags": batch["ner_tags"]}
    return fn


def encode(dd, tok, task_type: str, max_length: int):
    core, given = encoder(tok, max_length), dd["train"].features
    if task_type == "sequence-classification":
        fn, features = _classification(core), _ids_features(labels=given["label"])
    else:
        fn = _token_classification(core)
        features = _ids_features(labels=Sequence(Value("int32")), words=given["tokens"], word_tags=given["ner_tags"])
    return dd.map(fn, batched=True, batch_size=1000, remove_columns=dd["train"].column_names, features=features,
                  desc=f"encode ({task_type})")


def run(params: dict, task: str) -> dict:
    spec = params["tasks"][task]
    raw = load_from_disk(upstream(paths.path(paths.RAW, dataset=spec["dataset"]), f"data --dataset {spec['dataset']}"))
    tok = load()
    start = time.perf_counter()
    out = encode(raw, tok, spec["type"], params["encode"]["max_length"])
    seconds = time.perf_counter() - start
    with atomic_path(paths.path(paths.ENCODED, task=task), is_dir=True) as tmp:
        out.save_to_disk(str(tmp))
    print(f"encode: {task}: " + ", ".join(f"{s} {len(out[s])} rows" for s in out))
    tokens = count_tokens(out)
    return {"tokens": tokens, "tokens_per_second": round(tokens / max(seconds, 1e-9), 1)}
