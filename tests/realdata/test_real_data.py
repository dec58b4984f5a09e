"""The local source on the real public files in ../shared/data (skipped when absent: users do
not have that folder). Files are linked under data/external/, as a user would place them."""

import pytest

from conftest import SHARED_DATA, spec_for
from scratchlm import carving
from scratchlm.stages import data

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not here")


@pytest.fixture
def external(workdir):
    ext = workdir / "data" / "external"
    ext.mkdir(parents=True)
    for name in ("conll2003", "sst2", "imdb"):
        (ext / name).symlink_to(SHARED_DATA / name)
    return ext


def conll_spec(files: dict, scheme: str) -> dict:
    return spec_for(source="local", kind="ner", format="conll", files=files, scheme=scheme)


def test_conll2003_iob2_and_iob1_load_to_identical_datasets(external):
    iob2, info2 = data.build("conll", conll_spec({"train": "data/external/conll2003/train.txt",
                                                  "validation": "data/external/conll2003/valid.txt",
                                                  "test": "data/external/conll2003/valid.txt"}, "iob2"), 0)
    iob1, info1 = data.build("conll", conll_spec({"train": "data/external/conll2003/original_iob1/eng.train",
                                                  "validation": "data/external/conll2003/original_iob1/eng.testa",
                                                  "test": "data/external/conll2003/original_iob1/eng.testa"},
                                                 "iob1"), 0)
    assert len(iob2["train"]) == 14041 and sum(len(t) for t in iob2["train"]["tokens"]) == 203621
    assert len(iob2["validation"]) == 3250
    assert iob2["train"].features["ner_tags"].feature.names == iob1["train"].features["ner_tags"].feature.names
    for split in ("train", "validation"):
        assert list(iob2[split]["tokens"]) == list(iob1[split]["tokens"])
        assert list(iob2[split]["ner_tags"]) == list(iob1[split]["ner_tags"])
    assert info2["iob_repairs"] == 0
    stats = data.statistics(iob2)
    assert stats["train"]["entities"] == {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}


def test_sst2_glue_tsv(external):
    spec = spec_for(source="local", kind="classification", quoting="none", columns={"text": "sentence"},
                    label_names=["negative", "positive"],
                    files={"train": "data/external/sst2/train.tsv", "test": "data/external/sst2/dev.tsv"})
    dd, info = data.build("sst2", spec, 0)
    # the validation split is carved by sentence: 10% of train's 6,885 sentences, whole sentences
    # only (their phrases dropped), none of them equal to, holding or inside a training row
    assert len(dd["train"]) + len(dd["validation"]) + info["carved"]["dropped"] == 67349 and len(dd["test"]) == 872
    assert info["carved"]["by"] == "containment" and len(dd["validation"]) == 688
    train, validation = list(dd["train"]["text"]), list(dd["validation"]["text"])
    assert carving.Index(train).overlap(validation) == {"exact": 0, "contained": 0}
    assert carving.Index(validation).overlap(train) == {"exact": 0, "contained": 0}
    assert carving.Index(validation).overlap(validation) == {"exact": 688, "contained": 0}  # no phrase of another
    assert sorted(dd["test"]["label"]).count(1) == 444


def test_imdb_jsonl_and_gzipped_unsup(external):
    labelled = spec_for(source="local", kind="classification", label_names=["neg", "pos"],
                        files={"train": "data/external/imdb/train.jsonl"}, sample={"train": 2000})
    dd, _ = data.build("imdb", labelled, 0)
    # carved splits are sized from the sample (10% of 2,000), not from the 25,000-review file
    assert len(dd["validation"]) == len(dd["test"]) == 200 and len(dd["train"]) == 2000
    assert set(dd["test"]["label"]) == {0, 1}
    unsup = spec_for(source="local", kind="corpus", files={"train": "data/external/imdb/unsup.jsonl.gz"})
    dd, _ = data.build("unsup", unsup, 0)
    assert len(dd["train"]) + len(dd["validation"]) + len(dd["test"]) == 50000
