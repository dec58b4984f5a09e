"""Stage `data`: get one declared dataset into the on-disk form every later stage reads:
a `datasets.DatasetDict` (train/validation/test) with typed features under data/raw/<name>,
plus its statistics in results/data/<name>.json."""

from __future__ import annotations

import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from . import synthetic
from .io import atomic_path, write_json

SPLITS = ("train", "validation", "test")


def raw_dir(name: str) -> Path:
    return Path("data/raw") / name


def stats_file(name: str) -> Path:
    return Path("results/data") / f"{name}.json"


def _split_seed(seed: int, name: str, split: str) -> int:
    # stable across processes (unlike hash()), distinct per dataset and split
    return zlib.crc32(f"{seed}/{name}/{split}".encode())


def _features(generator: str):
    from datasets import ClassLabel, Features, Sequence, Value

    if generator == "sentiment":
        return Features({"text": Value("string"), "label": ClassLabel(names=synthetic.SENTIMENT_LABELS)})
    if generator == "ner":
        return Features({"tokens": Sequence(Value("string")),
                         "ner_tags": Sequence(ClassLabel(names=synthetic.NER_TAGS))})
    return Features({"text": Value("string")})


def _rows(generator: str, spec: dict, seed: int, name: str, split: str):
    n, s = spec[split], _split_seed(seed, name, split)
    if generator == "sentiment":
        noise = spec["label_noise"] if split == "train" else 0.0  # evaluate against true labels
        return list(synthetic.sentiment_examples(s, n, noise, spec["coherence"]))
    if generator == "ner":
        pools = synthetic.entity_pools(_split_seed(seed, name, "names"), max(50, spec["train"] // 4))
        return list(synthetic.ner_examples(s, n, pools, split))
    return list(synthetic.corpus_examples(s, n, spec["coherence"]))


def build(name: str, spec: dict, seed: int):
    from datasets import Dataset, DatasetDict

    features = _features(spec["generator"])
    splits = {}
    for split in SPLITS:
        ds = Dataset.from_list(_rows(spec["generator"], spec, seed, name, split), features=features)
        splits[split] = ds.shuffle(seed=_split_seed(seed, name, split) % 2**32)
    return DatasetDict(splits)


def _lengths(ds) -> list[int]:
    if "tokens" in ds.column_names:
        return [len(t) for t in ds["tokens"]]
    return [len(t.split()) for t in ds["text"]]


def _entities(ds) -> Counter:
    names = ds.features["ner_tags"].feature.names
    counts: Counter = Counter()
    for tags in ds["ner_tags"]:
        counts.update(names[t][2:] for t in tags if names[t].startswith("B-"))
    return counts


def _surface_forms(ds) -> set[str]:
    if "tokens" in ds.column_names:
        names = ds.features["ner_tags"].feature.names
        forms = set()
        for tokens, tags in zip(ds["tokens"], ds["ner_tags"]):
            for i, t in enumerate(tags):
                if names[t].startswith("B-"):
                    j = i + 1
                    while j < len(tags) and names[tags[j]].startswith("I-"):
                        j += 1
                    forms.add(" ".join(tokens[i:j]))
        return forms
    return set(ds["text"])


def statistics(dd) -> dict:
    out: dict = {"splits": {s: len(dd[s]) for s in dd}}
    for split, ds in dd.items():
        lengths = np.array(_lengths(ds)) if len(ds) else np.zeros(1)
        entry = {"words_p50": float(np.percentile(lengths, 50)), "words_p90": float(np.percentile(lengths, 90)),
                 "words_max": int(lengths.max())}
        if "label" in ds.column_names:
            names = ds.features["label"].names
            entry["labels"] = {names[k]: v for k, v in sorted(Counter(ds["label"]).items())}
        if "ner_tags" in ds.column_names:
            entry["entities"] = dict(sorted(_entities(ds).items()))
        out[split] = entry
    train, test = _surface_forms(dd["train"]), _surface_forms(dd["test"])
    # share of test texts (or, for NER, entity surface forms) also present in train
    out["test_overlap_with_train"] = round(len(train & test) / max(1, len(test)), 4)
    return out


def run(params: dict, dataset: str) -> None:
    spec = params["data"]["datasets"][dataset]
    dd = build(dataset, spec, params["seed"])
    with atomic_path(raw_dir(dataset), is_dir=True) as tmp:
        dd.save_to_disk(str(tmp))
    write_json(stats_file(dataset), statistics(dd))
    print(f"data: {dataset}: " + ", ".join(f"{s} {len(dd[s])}" for s in dd))
