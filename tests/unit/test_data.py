from datasets import ClassLabel, load_from_disk

from scratchlm import data
from scratchlm.io import read_json


def test_build_gives_typed_splits_deterministically(params_copy):
    spec = params_copy["data"]["datasets"]["sentiment"]
    dd = data.build("sentiment", spec, 42)
    assert {k: len(v) for k, v in dd.items()} == {"train": spec["train"], "validation": spec["validation"],
                                                  "test": spec["test"]}
    assert isinstance(dd["train"].features["label"], ClassLabel)
    assert dd["train"].features["label"].names == ["negative", "positive"]
    assert list(dd["test"]["text"]) == list(data.build("sentiment", spec, 42)["test"]["text"])
    assert list(dd["test"]["text"]) != list(data.build("sentiment", spec, 43)["test"]["text"])


def test_ner_features_and_stats(params_copy):
    dd = data.build("ner", params_copy["data"]["datasets"]["ner"], 1)
    assert dd["train"].features["ner_tags"].feature.names[:3] == ["O", "B-PER", "I-PER"]
    stats = data.statistics(dd)
    assert set(stats["train"]["entities"]) == {"PER", "ORG", "LOC", "MISC"}
    assert stats["test_overlap_with_train"] < 0.2  # only the deliberately ambiguous forms recur


def test_run_writes_dataset_and_stats(workdir, params_copy):
    data.run(params_copy, "sentiment")
    dd = load_from_disk("data/raw/sentiment")
    stats = read_json("results/data/sentiment.json")
    assert stats["splits"]["train"] == len(dd["train"])
    assert sum(stats["train"]["labels"].values()) == len(dd["train"])
    assert not [p for p in (workdir / "data/raw").iterdir() if p.name.startswith(".")]
