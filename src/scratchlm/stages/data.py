"""Stage `data`: get one declared dataset — synthetic, from the hub, or from the user's files —
into the on-disk form every later stage reads: a `datasets.DatasetDict` (train/validation/test)
under data/raw/<name> with canonical, typed columns by kind:

- classification: `text` (string), `label` (ClassLabel)
- ner:            `tokens` (Sequence(string)), `ner_tags` (Sequence(ClassLabel), strict IOB2)
- corpus:         `text` (string)

plus its statistics in results/data/<name>.json.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
from datasets import Dataset, DatasetDict

from .. import carving, console, paths, sources
from ..atomic import atomic_path, write_json
from ..errors import ScratchError
from ..kinds import dataset_kind
from ..sources import hub, iob, local, mix
from ..sources.form import DOCUMENT, SPLITS, features, split_seed

# ---------------------------------------------------------------- hub and local: canonical rows

class Canon:
    """Turns source rows into canonical columns, checking each row and naming it on failure."""

    def __init__(self, name: str, spec: dict, source_names: dict):
        self.key, self.spec, self.kind = f"data.datasets.{name}", spec, dataset_kind(spec)
        self.columns = spec["columns"]
        self.source_names = source_names
        self.repairs = self.skipped_empty = 0

    def _get(self, row: dict, column: str, where: str):
        if column not in row:
            raise ScratchError(f"{where}: no column {column!r} (has: {', '.join(map(str, row))}); "
                               f"map it in {self.key}.columns")
        return row[column]

    def rows(self, records: Iterable[tuple[str, dict]]) -> list[dict]:
        out = []
        for where, row in records:
            if self.kind == "ner":
                out.append(self._ner(row, where))
                continue
            text = self._get(row, self.columns["text"], where)
            text = "" if text is None else str(text).strip()
            if not text:
                if self.kind == "corpus":  # blank lines are part of corpora like WikiText
                    self.skipped_empty += 1
                    continue
                raise ScratchError(f"{where}: empty text in column {self.columns['text']!r}; remove the row or give "
                                   f"it text")
            if self.kind == "corpus":
                out.append({"text": text})
            else:
                out.append({"text": text, "label": (where, self._get(row, self.columns["label"], where))})
        return out

    def _ner(self, row: dict, where: str) -> dict:
        tokens, tags = self._get(row, self.columns["tokens"], where), self._get(row, self.columns["tags"], where)
        if not isinstance(tokens, list) or not isinstance(tags, list):
            raise ScratchError(f"{where}: tokens and tags must be lists; give each as a JSON list of strings")
        if len(tokens) != len(tags):
            raise ScratchError(f"{where}: {len(tokens)} tokens but {len(tags)} tags; give one tag per token")
        if not tokens:
            raise ScratchError(f"{where}: empty sentence; remove it")
        names = self.source_names.get(self.columns["tags"])
        tags = [names[t] if names and isinstance(t, int) else str(t) for t in tags]
        bad = [t for t in tags if not iob.check(t)]
        if bad:
            raise ScratchError(f"{where}: tag {bad[0]!r} is not O, B-TYPE or I-TYPE")
        tags, changed = iob.to_iob2(tags)
        if self.spec["scheme"] == "iob2":
            self.repairs += changed  # an IOB2 source should need none: count what was repaired
        return {"tokens": [str(t) for t in tokens], "ner_tags": tags, "where": where, DOCUMENT: row.get(DOCUMENT)}

    def label_names(self, splits: dict[str, list[dict]]) -> list[str]:
        given = self.spec["label_names"]
        if self.kind == "corpus":
            return []
        if self.kind == "ner":
            seen = iob.ordered_names(t for rows in splits.values() for r in rows for t in r["ner_tags"])
            source = self.source_names.get(self.columns["tags"])
            names = given or (source if source and set(seen) <= set(source) else seen)
            missing = sorted(set(seen) - set(names))
            if missing:
                raise ScratchError(f"{self.key}.label_names: tag {missing[0]!r} found in the data is not listed; "
                                   f"add it, or remove label_names to take the tags found")
            return list(names)
        for rows in splits.values():
            for r in rows:
                where, value = r["label"]
                if _fractional(value):
                    raise ScratchError(f"{where}: label {value!r} is not a class; give a class name or an integer id "
                                       f"(fix the row, or the label column: {self.key}.columns.label)")
        found = {str(r["label"][1]).strip() for rows in splits.values() for r in rows}
        names = given or self.source_names.get(self.columns["label"])
        if not names:
            self._check_case(splits, found)
        return names or sorted(found)

    def _check_case(self, splits: dict[str, list[dict]], found: set[str]) -> None:
        """Labels that differ only in case (`positive`, `Positive`) are one class spelt two ways far
        more often than two classes: refused, naming where each spelling first occurs."""
        by_case: dict[str, list[str]] = {}
        for name in sorted(found):
            by_case.setdefault(name.casefold(), []).append(name)
        clash = next((names for names in by_case.values() if len(names) > 1), None)
        if clash is None:
            return
        first = {}
        for rows in splits.values():
            for r in rows:
                first.setdefault(str(r["label"][1]).strip(), r["label"][0])
        spelt, other = sorted(clash, key=lambda name: first[name])[:2]
        raise ScratchError(f"{first[other]}: label {other!r} differs only in case from {spelt!r} ({first[spelt]}); "
                           f"fix the file so that each class ({self.key}) is spelt one way")

    def check_classes(self, splits: dict[str, list[dict]], names: list[str]) -> None:
        """Every class label_names lists occurs in the data, and every class (entity type) of the
        validation and test splits occurs in train: a class without training examples cannot be
        learned, and a name no row has is a mistake in the names."""
        if self.kind == "corpus":
            return

        def classes(row) -> set[str]:
            if self.kind == "ner":
                return {names[t][2:] for t in row["ner_tags"] if names[t] != "O"}
            return {names[row["label"]]}

        seen = {split: set().union(*map(classes, rows)) for split, rows in splits.items()}
        unused = [n for n in names if n not in set().union(*seen.values())] if self.kind == "classification" else []
        if self.spec["label_names"] and unused:
            raise ScratchError(f"{self.key}.label_names lists {unused[0]!r}, which no row has (classes found: "
                               f"{', '.join(n for n in names if n not in unused)}); remove it")
        for split in ("validation", "test"):
            for row in splits.get(split, []):
                new = sorted(classes(row) - seen["train"])
                if new:
                    what = "entity type" if self.kind == "ner" else "label"
                    raise ScratchError(f"{row['where']}: {what} {new[0]!r} of the {split} split never occurs in "
                                       f"train, so no model can learn it; fix the {what}, or add training rows of it")

    def encode_labels(self, rows: list[dict], names: list[str]) -> list[dict]:
        """Label values -> class ids: a name from `names`, or an integer id into it."""
        if self.kind != "classification":
            return rows
        index = {n: i for i, n in enumerate(names)}
        source = self.source_names.get(self.columns["label"])
        for row in rows:
            where, value = row["label"]
            row["where"] = where
            if isinstance(value, int) and source:
                if not 0 <= value < len(source):
                    raise ScratchError(f"{where}: label {value} is not a class id (an unlabelled split? "
                                       f"map {self.key}.splits to a labelled one)")
                value = source[value]
            text = str(value).strip()
            if text in index:
                row["label"] = index[text]
            elif text.lstrip("-").isdigit() and 0 <= int(text) < len(names):
                row["label"] = int(text)
            else:
                raise ScratchError(f"{where}: unknown label {text!r} (classes: {', '.join(names)}; "
                                   f"set {self.key}.label_names)")
        return rows


def _fractional(value) -> bool:
    """A number that is not an integer (0.5, "0.5"): no class id, and no name either."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool) and math.isfinite(number) and not number.is_integer()


def _text(ds) -> list[str]:
    return [" ".join(t) for t in ds["tokens"]] if "tokens" in ds.column_names else list(ds["text"])


def _carve_by(kind: str, documents: list) -> str:
    """How rows group for carving (carving.py): NER by document where the file has several
    (CoNLL's -DOCSTART-), phrase-level classification data by the sentences holding each text,
    anything else by exact text."""
    if kind == "ner":
        return "document" if None not in documents and len(set(documents)) > 1 else "exact"
    return "containment" if kind == "classification" else "exact"


def _carve(dd: dict, name: str, spec: dict, seed: int, documents: list, info: dict) -> dict:
    """Missing validation/test splits come out of train in whole units (carving.py: by sentence no
    carved row equals, holds or sits inside a training row, and a carved split keeps the sentences
    alone; by document or exact text none equals one). Each split gets its fraction of the train
    split (grouped by sentence: of its sentences), or of `sample.train` when that is smaller (a
    corpus of 50,000 texts sampled to 6,000 gets 600 validation texts, not 5,000); the sampled
    train rows then come from what is left."""
    missing = [split for split in ("validation", "test") if dd.get(split) is None]
    if not missing:
        return dd
    train, kind = dd["train"], dataset_kind(spec)
    by, texts = _carve_by(kind, documents), _text(train)
    row_units = carving.units(texts, by, documents)
    whole = carving.sentences(texts, row_units) if by == "containment" else None
    base = min(spec["sample"].get("train", len(train)), sum(whole) if whole else len(train))
    wanted = {split: max(1, round(spec[f"{split}_fraction"] * base)) for split in missing}
    try:
        if sum(wanted.values()) >= len(train):
            raise ValueError("too few rows")
        strata = list(train["label"]) if "label" in train.column_names else None
        splits, dropped = carving.carve(row_units, wanted, seed, strata, whole)
        if by == "document":
            splits, dropped = carving.without_copies(splits, dropped, texts)
            if not all(splits[split] for split in missing):  # every carved row was a copy of a training row
                raise ValueError("empty")
    except ValueError:
        raise ScratchError(f"data.datasets.{name}.files.train: {len(train)} rows are too few to carve "
                           f"{' and '.join(missing)} from in whole {UNITS[by]}; add rows, or give "
                           f"files.{missing[0]}") from None
    for split, rows in splits.items():
        dd[split] = train.select(rows)
    _check_carved(dd, name, missing)
    info["carved"] = {"by": by, "dropped": len(dropped)}
    return dd


UNITS = {"document": "documents", "containment": "sentences (a text with every text inside it)",
         "exact": "texts (copies together)"}


def _check_carved(dd: dict, name: str, carved: list[str]) -> None:
    """Every class of train has a row in each carved split: model selection on a split without a
    class cannot see it."""
    column = "label" if "label" in dd["train"].column_names else None
    if column is None:
        return
    names = dd["train"].features["label"].names
    for split in carved:
        absent = sorted(set(dd["train"]["label"]) - set(dd[split]["label"]))
        if absent:
            raise ScratchError(f"data.datasets.{name}: the carved {split} split has no row of class "
                               f"{names[absent[0]]!r} ({len(dd[split])} rows); raise "
                               f"data.datasets.{name}.{split}_fraction, or give files.{split}")


def _sample(dd: dict, name: str, spec: dict, seed: int) -> dict:
    """`sample`: at most N rows of a split, a seeded subset."""
    for split, n in spec["sample"].items():
        if len(dd[split]) > n:
            dd[split] = dd[split].shuffle(seed=split_seed(seed, name, split)).select(range(n))
    return dd


def _read(name: str, spec: dict, seed: int):
    raw, source_names = (hub if spec["source"] == "hub" else local).records(name, spec)
    canon = Canon(name, spec, source_names)
    rows = {split: canon.rows(it) for split, it in raw.items() if it is not None}
    names = canon.label_names(rows)
    feats = features(canon.kind, names)
    if canon.kind == "ner":
        rows = {s: [{**r, "ner_tags": [names.index(t) for t in r["ner_tags"]]} for r in rs] for s, rs in rows.items()}
    rows = {split: canon.encode_labels(rs, names) for split, rs in rows.items()}
    canon.check_classes(rows, names)
    documents = [r.get(DOCUMENT) for r in rows["train"]]
    dd = {split: Dataset.from_list([{k: v for k, v in r.items() if k not in ("where", DOCUMENT)} for r in rs],
                                   features=feats) for split, rs in rows.items()}
    for split, ds in dd.items():
        if len(ds) == 0:
            raise ScratchError(f"data.datasets.{name}: the {split} split is empty; give it rows, or map "
                               f"data.datasets.{name}.files.{split} to a file that has some")
    info = {"iob_repairs": canon.repairs, "skipped_empty_texts": canon.skipped_empty}
    dd = _sample(_carve(dd, name, spec, seed, documents, info), name, spec, seed)
    if spec["source"] == "local":
        info["files"] = {split: {"path": path, "sha256": _sha256(Path(path))}
                         for split, path in spec["files"].items() if path}
    else:
        info["hub"] = {k: spec[k] for k in ("path", "name", "revision")}
    return DatasetDict({split: dd[split] for split in SPLITS}), info


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build(name: str, spec: dict, seed: int):
    """(DatasetDict, provenance info) for one dataset spec of params."""
    if spec["source"] == "mix":
        dd, info = mix.combine(spec, seed, build)
        return DatasetDict(_sample(dd, name, spec, seed)), info
    if spec["source"] == "synthetic":  # imported by name: only a synthetic dataset's jobs depend on the generators
        return importlib.import_module(f"{sources.__name__}.synthetic").build(name, spec, seed)
    return _read(name, spec, seed)


# ---------------------------------------------------------------- statistics

def _lengths(ds) -> list[int]:
    if "tokens" in ds.column_names:
        return [len(t) for t in ds["tokens"]]
    return [len(t.split()) for t in ds["text"]]


def _entities(ds) -> list[tuple[str, str]]:
    """(type, surface form) of every entity."""
    names = ds.features["ner_tags"].feature.names
    found = []
    for tokens, tags in zip(ds["tokens"], ds["ner_tags"]):
        found += [(kind, " ".join(tokens[a:b])) for kind, a, b in iob.spans([names[t] for t in tags])]
    return found


def _surface_forms(ds) -> set[str]:
    if "ner_tags" in ds.column_names:
        return {form for _, form in _entities(ds)}
    return set(ds["text"])


def statistics(dd, info: dict | None = None) -> dict:
    out: dict = {"splits": {s: len(dd[s]) for s in dd}}
    for split, ds in dd.items():
        lengths = np.array(_lengths(ds)) if len(ds) else np.zeros(1)
        entry = {"words_p50": float(np.percentile(lengths, 50)), "words_p90": float(np.percentile(lengths, 90)),
                 "words_max": int(lengths.max())}
        if "label" in ds.column_names:
            names = ds.features["label"].names
            entry["labels"] = {names[k]: v for k, v in sorted(Counter(ds["label"]).items())}
        if "ner_tags" in ds.column_names:
            entry["entities"] = dict(sorted(Counter(kind for kind, _ in _entities(ds)).items()))
        out[split] = entry
    # rows of validation and test that are rows of train, or inside one (as whole words)
    index = carving.Index(_text(dd["train"]))
    out["overlap"] = {split: index.overlap(_text(dd[split])) for split in ("validation", "test")}
    train, test = _surface_forms(dd["train"]), _surface_forms(dd["test"])
    # share of test texts (or, for NER, entity surface forms) also present in train
    out["test_overlap_with_train"] = round(len(train & test) / max(1, len(test)), 4)
    return {**out, **(info or {})}


def run(params: dict, dataset: str) -> None:
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # saving a few MB is not long work; the bars only clutter the log
    dd, info = build(dataset, params["data"]["datasets"][dataset], params["seed"])
    with atomic_path(paths.path(paths.RAW, dataset=dataset), is_dir=True) as tmp:
        dd.save_to_disk(str(tmp))
    stats = statistics(dd, info)
    write_json(paths.path(paths.DATA_STATS, dataset=dataset), stats)
    print(f"data: {dataset}: " + ", ".join(f"{s} {len(dd[s])}" for s in dd))
    test = stats["overlap"]["test"]
    if test["exact"]:
        console.warn(f"data.datasets.{dataset}: {test['exact']} of {len(dd['test'])} test rows are also training "
                     f"rows ({test['contained']} more sit inside one): its test figures partly measure memory; "
                     f"remove them from one of the two files")
