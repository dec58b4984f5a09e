"""Tokenization throughput of our `encode` stage on the IMDB unsup corpus (synthetic corpus
when ../shared/data is absent), against the raw limit and against a per-example loop.

Every configuration runs in a fresh subprocess (`python -m benchmarks.tokenize_speed METHOD
FOLDER`), which reports its seconds (imports excluded) and its own peak RSS:

- ours: the real stage, `scratchlm encode --task bench` through scratchlm.cli.main, in a
  folder laid out as the pipeline's (data/raw/bench, models/tokenizer, params.yaml), with the
  environment a pipeline job gets (TOKENIZERS_PARALLELISM unset: cli.main turns it on for the
  tokenizing stages); it loads the raw Arrow data, maps, casts the labels and saves
  data/encoded/bench.
- raw: the same fast tokenizer's `tokenizers.Tokenizer.encode_batch`, 1000 texts per call (the
  stage's batch), all cores, nothing else: the issue's "raw limit", the key's denominator.
- raw_fast: the same with `encode_batch_fast` (no character offsets), which the stage itself
  calls for classification texts: the limit of what the stage does, shown beside.
- loop: one `tokenizer(text)` call per example (transformers' fast tokenizer).
- map: a plain `datasets.map(batched=True)` calling the tokenizer, all cores.

Tokens/s divides the corpus's tokens (untruncated, [CLS]/[SEP] included, as the raw run counts
them) by each configuration's seconds, so all do the same work per token; our stage then cuts
at encode.max_length, which changes what it keeps, not what it tokenizes.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import sources
from .common import ROOT, Outcome, Row, at_least, at_most, fmt, run_json, subprocess_env

BATCH = 1000  # the stage's datasets.map batch size
RSS_FLAT = 1.2  # peak RSS "flat": at most this factor from the smaller corpus to the larger


@dataclass(frozen=True)
class Sizes:
    documents: tuple[int, ...]  # ours and raw at each; the other peers at the largest only


FULL = Sizes(documents=(10_000, 50_000))
QUICK = Sizes(documents=(100, 500))


# ---------------------------------------------------------------- the workers (subprocesses)

def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise KeyError(field)


class Clock:
    """Seconds and memory of the timed part of a worker: RSS when it starts, peak RSS (VmHWM)
    when it stops, before anything after it can raise the peak. Not getrusage's ru_maxrss: a
    process started from a big parent reports at least the parent's RSS there (Linux carries the
    high-water mark over exec), and the harness's own RSS would hide the worker's.

    VmHWM counts the pages of memory-mapped files the process has read (datasets maps its Arrow
    files), which the kernel may drop at any time; the anonymous part (RssAnon) is what the
    process holds. Linux keeps no peak of it, so a thread samples it every 10 ms."""

    def __enter__(self):
        import threading

        self.rss_before_mb = _status_mb("VmRSS")
        self.peak_anon_mb, self._done = _status_mb("RssAnon"), threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self.start = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak_anon_mb = max(self.peak_anon_mb, _status_mb("RssAnon"))

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.peak_rss_mb = _status_mb("VmHWM")
        self._done.set()
        self._sampler.join()

    def figures(self, **extra) -> dict:
        return {"seconds": self.seconds, "rss_before_mb": round(self.rss_before_mb, 1),
                "peak_rss_mb": round(self.peak_rss_mb, 1), "peak_anon_rss_mb": round(self.peak_anon_mb, 1), **extra}


def _texts(folder: Path) -> list[str]:
    from datasets import load_from_disk

    return list(load_from_disk(str(folder / "data/raw/bench"))["train"]["text"])


def _ours(folder: Path) -> dict:
    import datasets
    import pyarrow.compute as pc

    from scratchlm import cli

    for module in ("transformers", "scratchlm.stages.encode", "scratchlm.tokenization", "scratchlm.stages.data"):
        importlib.import_module(module)  # before the clock: importing is not tokenizing

    os.chdir(folder)
    with Clock() as clock:
        status = cli.main(["--params", "params.yaml", "encode", "--task", "bench"])
    if status != 0:
        raise SystemExit("the encode stage failed")
    out = datasets.load_from_disk("data/encoded/bench")
    kept = sum(pc.sum(pc.list_value_length(out[s].data.column("input_ids"))).as_py() for s in out)
    return clock.figures(output_tokens=kept)


def _raw(folder: Path, method: str = "encode_batch") -> dict:
    from tokenizers import Tokenizer

    texts, tok = _texts(folder), Tokenizer.from_file(str(folder / "models/tokenizer/tokenizer.json"))
    encode, tokens = getattr(tok, method), 0
    with Clock() as clock:
        for s in range(0, len(texts), BATCH):
            tokens += sum(len(e) for e in encode(texts[s:s + BATCH]))
    return clock.figures(tokens=tokens)


def _raw_fast(folder: Path) -> dict:
    return _raw(folder, "encode_batch_fast")


def _loop(folder: Path) -> dict:
    from scratchlm.tokenization import load

    texts, tok = _texts(folder), load(folder / "models/tokenizer")
    with Clock() as clock:
        for text in texts:
            tok(text)
    return clock.figures()


def _map(folder: Path) -> dict:
    from datasets import load_from_disk

    from scratchlm.tokenization import load

    ds, tok = load_from_disk(str(folder / "data/raw/bench"))["train"], load(folder / "models/tokenizer")
    with Clock() as clock:
        ds.map(lambda b: tok(b["text"]), batched=True)
    return clock.figures()


WORKERS = {"ours": _ours, "raw": _raw, "raw_fast": _raw_fast, "loop": _loop, "map": _map}
ENV = {"ours": None, "raw": "true", "raw_fast": "true", "loop": "true", "map": "true"}  # TOKENIZERS_PARALLELISM


# ---------------------------------------------------------------- the parent

def _params_file(path: Path, documents: int) -> None:
    """The repository's params.yaml plus a dataset and a task named `bench` for the stage to run."""
    import yaml

    from scratchlm.params import read_yaml

    p = read_yaml(ROOT / "params.yaml")
    p["data"]["datasets"]["bench"] = {"source": "synthetic", "generator": "sentiment",
                                      "train": documents, "validation": 1, "test": 1}
    p["tasks"]["bench"] = {"type": "sequence-classification", "dataset": "bench", "metric": "accuracy"}
    path.write_text(yaml.safe_dump(p, sort_keys=False), encoding="utf-8")


def _folder(root: Path, texts: list[str], tok) -> Path:
    """A pipeline-shaped folder holding the corpus as the data stage would save it (one row in
    validation and test: the stage maps every split) and the tokenizer."""
    from datasets import Dataset, DatasetDict

    from scratchlm.stages.data import features

    folder = root / str(len(texts))
    feats = features("classification", sources.LABELS)

    def split(rows):
        return Dataset.from_dict({"text": rows, "label": [0] * len(rows)}, features=feats)

    DatasetDict({"train": split(texts), "validation": split(texts[:1]), "test": split(texts[:1])}).save_to_disk(
        str(folder / "data/raw/bench"))
    tok.save_pretrained(str(folder / "models/tokenizer"))
    _params_file(folder / "params.yaml", len(texts))
    return folder


def _run(method: str, folder: Path) -> dict:
    env = subprocess_env(TOKENIZERS_PARALLELISM=ENV[method])
    start = time.perf_counter()
    figures = run_json(["-m", "benchmarks.tokenize_speed", method, str(folder)], env)
    return {**figures, "process_seconds": round(time.perf_counter() - start, 2)}


def _configurations(sizes: Sizes, texts: list[str], tok, root: Path) -> dict:
    """{documents: {method: figures}}; tokens/s from the raw run's token count at that size."""
    found = {}
    for n in sizes.documents:
        folder = _folder(root, texts[:n], tok)
        methods = ["raw", "ours"] + (["raw_fast", "loop", "map"] if n == max(sizes.documents) else [])
        runs = {m: _run(m, folder) for m in methods}
        tokens = runs["raw"]["tokens"]
        for figures in runs.values():
            figures["tokens_per_second"] = round(tokens / figures["seconds"])
            figures["seconds"] = round(figures["seconds"], 3)
        found[n] = {"tokens": tokens, **runs}
    return found


def measure(data_dir: Path, tok, sizes: Sizes, seed: int) -> Outcome:
    source, texts = sources.corpus(data_dir, max(sizes.documents), seed)
    with tempfile.TemporaryDirectory(prefix="bench-tokenize-") as tmp:
        runs = _configurations(sizes, texts, tok, Path(tmp))
    small, large = runs[min(sizes.documents)], runs[max(sizes.documents)]
    fraction = round(large["ours"]["tokens_per_second"] / large["raw"]["tokens_per_second"], 3)
    growth = round(large["ours"]["peak_rss_mb"] / small["ours"]["peak_rss_mb"], 3)
    anon_growth = round(large["ours"]["peak_anon_rss_mb"] / small["ours"]["peak_anon_rss_mb"], 3)
    n = f"{max(sizes.documents):,} docs"
    rate = lambda method: fmt(large[method]["tokens_per_second"] / 1e6, " M tok/s")  # noqa: E731
    rows = [
        Row(f"encode stage throughput ({n}): ours vs raw encode_batch", rate("ours"), rate("raw"), fraction,
            "≥ 0.90", at_least(fraction, 0.9), "tokenize_fraction_of_raw"),
        Row(f"encode stage throughput ({n}): ours vs raw encode_batch_fast (what the stage calls)",
            rate("ours"), rate("raw_fast"),
            round(large["ours"]["tokens_per_second"] / large["raw_fast"]["tokens_per_second"], 3), "—", None),
        Row(f"encode stage throughput ({n}): ours vs per-example loop", rate("ours"), rate("loop"),
            round(large["ours"]["tokens_per_second"] / large["loop"]["tokens_per_second"], 2), "—", None),
        Row(f"encode stage peak RSS: {n} vs {min(sizes.documents):,} docs",
            fmt(large["ours"]["peak_rss_mb"], " MB", 0), fmt(small["ours"]["peak_rss_mb"], " MB", 0), growth,
            f"≤ {RSS_FLAT} (flat)", at_most(growth, RSS_FLAT), "tokenize_peak_rss_growth"),
        Row(f"encode stage peak anonymous RSS (mapped Arrow pages left out): {n} vs {min(sizes.documents):,} docs",
            fmt(large["ours"]["peak_anon_rss_mb"], " MB", 0), fmt(small["ours"]["peak_anon_rss_mb"], " MB", 0),
            anon_growth, f"≤ {RSS_FLAT} (flat)", at_most(anon_growth, RSS_FLAT)),
    ]
    detail = {"corpus": source, "batch": BATCH, "runs": runs,
              "tokens_per_second": "corpus tokens (untruncated, as raw counts them) / seconds; imports excluded"}
    return Outcome(summary={"tokenize_fraction_of_raw": fraction, "tokenize_peak_rss_growth": growth},
                   rows=rows, detail=detail)


if __name__ == "__main__":  # a worker: one configuration, its figures as one JSON line
    print(json.dumps(WORKERS[sys.argv[1]](Path(sys.argv[2]))))
