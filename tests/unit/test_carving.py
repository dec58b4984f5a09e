"""Carving a split out of train keeps documents, sentences with their phrases, and copies of a
text whole: constructed cases checked against a brute-force search for any leak."""


import pytest
from datasets import ClassLabel as Label
from datasets import Dataset, Features, Value

from scratchlm import carving
from scratchlm.errors import ScratchError
from scratchlm.stages import data


def inside(a: str, b: str) -> bool:
    """a is b, or a run of b's whole words."""
    return f" {a} " in f" {b} "


def leaks(texts: list[str], splits: dict[str, list[int]]) -> list[tuple[str, str]]:
    """Every (carved row, train row) pair where one equals or sits inside the other."""
    train = [texts[i] for i in splits["train"]]
    return [(texts[i], t) for split, rows in splits.items() if split != "train" for i in rows for t in train
            if inside(texts[i], t) or inside(t, texts[i])]


# sentences of their own words around two shared ones ("the", "film"), as reviews are
SENTENCES = [f"the {adj} film {verb} {how}" for adj, verb, how in
             zip([f"adj{i}" for i in range(30)], [f"verb{i}" for i in range(30)], [f"how{i}" for i in range(30)])]


def phrases(sentence: str) -> list[str]:
    words = sentence.split()
    return [" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)]


def test_phrases_never_cross_the_cut_and_shared_phrases_are_dropped():
    texts = [p for s in SENTENCES for p in phrases(s)]  # SST-2's form: every phrase of every sentence
    units = carving.units(texts, "containment")
    splits, dropped = carving.carve(units, {"validation": 60, "test": 30}, seed=3)
    assert leaks(texts, splits) == []
    assert len(splits["validation"]) >= 60 and len(splits["test"]) >= 30 and len(splits["train"]) > 200
    # "the" and "film" are in sentences on both sides: dropped, not leaked
    assert {"the", "film"} <= {texts[i] for i in dropped}
    assert sorted([*dropped, *(i for rows in splits.values() for i in rows)]) == list(range(len(texts)))


def test_a_split_carved_by_sentence_keeps_whole_sentences_only():
    texts = [p for s in SENTENCES for p in phrases(s)]
    units = carving.units(texts, "containment")
    whole = carving.sentences(texts, units)
    assert [texts[i] for i, w in enumerate(whole) if w] == SENTENCES
    splits, dropped = carving.carve(units, {"validation": 5}, seed=3, whole=whole)
    assert leaks(texts, splits) == []
    assert len(splits["validation"]) == 5 and {texts[i] for i in splits["validation"]} <= set(SENTENCES)
    # the carved sentences' phrases leave train with them, and are not kept for selection
    carved = [texts[i] for i in splits["validation"]]
    assert {i for i, t in enumerate(texts) if any(inside(t, s) and t != s for s in carved)} <= set(dropped)
    assert sorted([*dropped, *(i for rows in splits.values() for i in rows)]) == list(range(len(texts)))


def test_documents_stay_whole():
    documents = [d for d in range(12) for _ in range(5)]
    texts = [f"sentence {i} of document {d}" for i, d in enumerate(documents)]
    splits, dropped = carving.carve(carving.units(texts, "document", documents), {"validation": 9}, seed=0)
    by_split = {split: {documents[i] for i in rows} for split, rows in splits.items()}
    assert not dropped and not by_split["validation"] & by_split["train"]
    assert len(splits["validation"]) == 10  # two whole documents: the first that reach 9 rows


def test_copies_of_a_text_go_together_and_the_seed_chooses():
    texts = ["a b", "c d", "a b", "e f", "c d", "g h"] * 3
    splits, dropped = carving.carve(carving.units(texts, "exact"), {"validation": 3}, seed=1)
    assert not dropped and not {texts[i] for i in splits["validation"]} & {texts[i] for i in splits["train"]}
    other = carving.carve(carving.units(texts, "exact"), {"validation": 3}, seed=2)[0]
    assert carving.carve(carving.units(texts, "exact"), {"validation": 3}, seed=1)[0] == splits
    assert other != splits


def test_containment_is_of_whole_words_and_too_few_units_raise():
    assert carving.units(["the film", "the filmmaker"], "containment") == [(0,), (1,)]
    assert carving.units(["the film", "see the film"], "containment") == [(1,), (1,)]
    with pytest.raises(ValueError):
        carving.carve(carving.units(["one text"] * 4, "exact"), {"validation": 1}, seed=0)  # nothing left


def test_overlap_counts_equal_rows_and_rows_inside_a_training_row():
    assert carving.Index(["a good film", "bad"]).overlap(["a good film", "good film", "good", "great"]) == \
        {"exact": 1, "contained": 2}


def test_a_carve_that_leaves_a_class_without_validation_rows_stops_in_one_line():
    feats = Features({"text": Value("string"), "label": Label(names=["negative", "positive"])})
    dd = {"train": Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]}, features=feats),
          "validation": Dataset.from_dict({"text": ["d"], "label": [0]}, features=feats)}
    with pytest.raises(ScratchError, match=r"^data.datasets.x: the carved validation split has no row of class "
                                           r"'positive' \(1 rows\); raise data.datasets.x.validation_fraction"):
        data._check_carved(dd, "x", ["validation"])


def test_a_conll_file_without_a_validation_file_is_carved_by_document(workdir):
    from conftest import spec_for

    lines = []
    for d in range(8):
        lines += ["-DOCSTART- -X- -X- O", "", "SOCCER NN O", ""]  # a heading every document repeats
        for i in range(4):
            lines += [f"doc{d} NN O", f"s{i} NN O", "Paris NNP B-LOC", ""]
    path = workdir / "data/external/train.txt"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines))
    test = workdir / "data/external/test.txt"
    test.write_text("doc0 NN O\ns0 NN O\nParis NNP B-LOC\n\nRome NNP B-LOC\n")
    spec = spec_for(source="local", kind="ner", files={"train": "data/external/train.txt",
                                                        "test": "data/external/test.txt"}, validation_fraction=0.2)
    dd, info = data.build("x", spec, 0)
    docs = {split: {tokens[0] for tokens in dd[split]["tokens"]} for split in ("train", "validation")}
    assert docs["validation"] and not docs["validation"] & docs["train"]
    # two documents (10 rows: the first that reach 8), less their headings, which train has too
    assert len(dd["validation"]) == 8 and info["carved"] == {"by": "document", "dropped": 2}
    assert "SOCCER" in docs["train"] and "SOCCER" not in docs["validation"]
    # the test file's first sentence is doc0's: a training row unless doc0 went to validation
    assert data.statistics(dd)["overlap"]["test"] == {"exact": int("doc0" in docs["train"]), "contained": 0}


def test_a_phrase_level_file_is_carved_in_sentences_and_sized_by_its_sentences_or_sample(workdir):
    from conftest import spec_for

    rows = [(p, i % 2) for i, s in enumerate(SENTENCES) for p in phrases(s)]  # 30 sentences, 450 rows
    path = workdir / "data/external/train.csv"
    path.parent.mkdir(parents=True)
    path.write_text("text,label\n" + "".join(f"{t},{['neg', 'pos'][y]}\n" for t, y in rows))
    files = {"train": "data/external/train.csv"}
    dd, info = data.build("x", spec_for(source="local", kind="classification", files=files,
                                        validation_fraction=0.2, test_fraction=0.1), 0)
    assert info["carved"]["by"] == "containment"
    assert len(dd["validation"]) == 6 and len(dd["test"]) == 3  # of the 30 sentences, not of the 450 rows
    assert set(dd["validation"]["text"]) | set(dd["test"]["text"]) <= set(SENTENCES)
    sampled = spec_for(source="local", kind="classification", files=files, validation_fraction=0.2,
                       test_fraction=0.1, sample={"train": 20})
    dd, _ = data.build("x", sampled, 0)
    assert len(dd["validation"]) == 4 and len(dd["test"]) == 2 and len(dd["train"]) == 20  # of the sample
