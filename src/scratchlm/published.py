"""The published benchmarks a dataset may declare itself to be (`benchmark:` in a dataset spec,
or recognised from a hub id): the dataset kind each one is, which params validation checks, and
the literature numbers the report shows beside our runs on it, and only there. The schema's
`benchmark` enum lists these names too; a unit test keeps the two equal."""

from __future__ import annotations

from typing import NamedTuple


class Reference(NamedTuple):
    who: str
    metric: str
    value: float
    split: str


class Benchmark(NamedTuple):
    kind: str  # the dataset kind (params.dataset_kind) it is
    references: list[Reference]


BENCHMARKS = {
    "imdb": Benchmark("classification", [Reference("GRU, the tutorial chapter", "accuracy", 0.89, "test"),
                                         Reference("ULMFiT (Howard & Ruder, 2018)", "accuracy", 0.954, "test")]),
    "sst2": Benchmark("classification", [Reference("BERT-base (Devlin et al., 2019)", "accuracy", 0.923, "dev")]),
    "conll2003": Benchmark("ner", [Reference("BERT-base (Devlin et al., 2019)", "entity_f1", 0.924, "test"),
                                   Reference("BiLSTM-CRF (Lample et al., 2016)", "entity_f1", 0.909, "test")]),
}
