"""The literature numbers of the published benchmarks a dataset may declare itself to be
(`benchmark:` in a dataset spec, or recognised from a hub id), which the report shows beside our
runs on it, and only there. Their names and dataset kinds are kinds.BENCHMARK_KINDS (params
validation reads those, not this file); a unit test keeps the three lists of names equal."""

from __future__ import annotations

from typing import NamedTuple


class Reference(NamedTuple):
    """A published score, and which of our runs stands against it (`ours`): `scratch`, the control
    trained from random weights on all labels; `pretrained`, our best run from a pretrained model
    on all labels; or a method (`prompt`, `pet`, `full`) at `shots` labelled examples per class."""
    who: str
    metric: str
    value: float
    split: str
    ours: str
    shots: int = 0


# From-scratch figures first (what our `scratch` control stands against), then pretrained ones.
# GLUE hides SST-2's test labels: its figures are on GLUE's dev set, which we keep as the test split.
BENCHMARKS: dict[str, list[Reference]] = {
    "imdb": [
        Reference("LSTM from random weights (Dai & Le, 2015)", "accuracy", 0.865, "test", "scratch"),
        Reference("GRU, the tutorial chapter", "accuracy", 0.89, "test", "scratch"),
        Reference("LSTM pretrained as an LM on IMDB's reviews (Dai & Le, 2015)", "accuracy", 0.9236, "test",
                  "pretrained"),
        Reference("ULMFiT (Howard & Ruder, 2018)", "accuracy", 0.954, "test", "pretrained")],
    "sst2": [
        Reference("CNN from random embeddings (Kim, 2014)", "accuracy", 0.827, "test", "scratch"),
        Reference("BERT-base without pretraining", "accuracy", 0.799, "dev", "scratch"),
        Reference("BabyLM strict-small: 10M words of pretraining", "accuracy", 0.870, "dev", "pretrained"),
        Reference("BERT-base (Devlin et al., 2019)", "accuracy", 0.923, "dev", "pretrained"),
        Reference("LM-BFF zero-shot prompt, RoBERTa-large (Gao et al., 2021)", "accuracy", 0.836, "dev", "prompt"),
        Reference("LM-BFF head fine-tuning, 16 per class", "accuracy", 0.814, "dev", "full", 16),
        Reference("LM-BFF prompt-based fine-tuning, 16 per class", "accuracy", 0.927, "dev", "pet", 16)],
    "conll2003": [
        Reference("LSTM-CRF, characters, random embeddings (Lample et al., 2016)", "entity_f1", 0.836, "test",
                  "scratch"),
        Reference("LSTM-CRF, characters, pretrained embeddings (Lample et al., 2016)", "entity_f1", 0.909, "test",
                  "pretrained"),
        Reference("TagLM: biLM states into a BiLSTM-CRF (Peters et al., 2017)", "entity_f1", 0.919, "test",
                  "pretrained"),
        Reference("BERT-base (Devlin et al., 2019)", "entity_f1", 0.924, "test", "pretrained")],
}
