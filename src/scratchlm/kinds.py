"""The vocabulary params are checked against: dataset kinds, task types and their metrics, file
formats and the published benchmarks' kinds.

Small and free of imports on purpose: params.py, which every stage's command imports, reads these
instead of the data sources, so that an edit to a reader or a generator reruns only the data
stages that use it (dag.code_deps)."""

from __future__ import annotations

from pathlib import Path

SENTIMENT_LABELS = ["negative", "positive"]  # the synthetic sentiment generator's classes, in id order

# a synthetic generator -> the dataset kind it makes
SYNTHETIC_KIND = {"sentiment": "classification", "ner": "ner", "corpus": "corpus"}
# task type -> the dataset kinds it can read
TASK_KINDS = {"sequence-classification": ("classification",), "token-classification": ("ner",)}
# task type -> the metrics it is scored on: the main one first (the report's, compare's and the default
# validation metric that selects the checkpoint), then the one the report shows beside it; all
# greater-is-better
TASK_METRICS = {"sequence-classification": ("accuracy", "macro_f1"),
                "token-classification": ("entity_f1", "token_accuracy")}
TEXT_KINDS = ("corpus", "classification")  # the kinds whose text a language model can be pretrained on

# published benchmark -> its dataset kind (the schema's `benchmark` enum lists the same names;
# published.py has their literature numbers)
BENCHMARK_KINDS = {"imdb": "classification", "sst2": "classification", "conll2003": "ner"}

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "conll", "text")
# the dataset kinds a local file format can hold (JSON, JSON Lines and Parquet hold any)
FORMAT_KINDS = {"conll": ("ner",), "csv": ("classification", "corpus"), "tsv": ("classification", "corpus"),
                "text": ("corpus",)}
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
             ".parquet": "parquet", ".conll": "conll", ".iob": "conll", ".bio": "conll"}
_TEXT_SUFFIXES = (".txt", ".text", ".tokens")  # CoNLL columns for an NER dataset, plain text for a corpus


def dataset_kind(spec: dict) -> str:
    """classification | ner | corpus."""
    return SYNTHETIC_KIND[spec["generator"]] if spec["source"] == "synthetic" else spec["kind"]


def suffix_format(path: Path, kind: str | None = None) -> str | None:
    """The format its extension names (a final `.gz` looked through), or None; `.txt` is CoNLL
    columns for an NER dataset and plain text otherwise."""
    suffixes = [s.lower() for s in path.suffixes if s != ".gz"]
    if not suffixes:
        return None
    if suffixes[-1] in _TEXT_SUFFIXES:
        return "conll" if kind == "ner" else "text"
    return _SUFFIXES.get(suffixes[-1])
