import gzip
import json

import pytest
from datasets import ClassLabel, load_from_disk

from conftest import DEFAULT_PARAMS, HUNG_AFTER_S, spec_for
from scratchlm.atomic import read_json
from scratchlm.errors import ScratchError
from scratchlm.stages import data


def test_synthetic_build_gives_typed_splits_deterministically(params_copy):
    spec = params_copy["data"]["datasets"]["sentiment"]
    dd, _ = data.build("sentiment", spec, 42)
    assert {k: len(v) for k, v in dd.items()} == {"train": spec["train"], "validation": spec["validation"],
                                                  "test": spec["test"]}
    assert isinstance(dd["train"].features["label"], ClassLabel)
    assert dd["train"].features["label"].names == ["negative", "positive"]
    assert list(dd["test"]["text"]) == list(data.build("sentiment", spec, 42)[0]["test"]["text"])
    assert list(dd["test"]["text"]) != list(data.build("sentiment", spec, 43)[0]["test"]["text"])


def test_ner_features_and_stats(params_copy):
    dd, _ = data.build("ner", params_copy["data"]["datasets"]["ner"], 1)
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


# ---------------------------------------------------------------- local files

def write(path, text: str, gz: bool = False) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path.relative_to(path.cwd()))


@pytest.fixture
def ext(workdir):
    return workdir / "data" / "external"


def test_tsv_without_quoting_and_label_ids(ext):
    train = write(ext / "train.tsv", "sentence\tlabel\n" + "".join(f'it \'s "great" {i} \t1\nawful film {i} \t0\n'
                                                                 for i in range(10)))
    test = write(ext / "dev.tsv", "sentence\tlabel\nfine \t1\nbad \t0\n")
    spec = spec_for(source="local", kind="classification", files={"train": train, "test": test}, quoting="none",
                    columns={"text": "sentence"}, label_names=["negative", "positive"])
    dd, info = data.build("x", spec, 0)
    assert dd["test"]["text"][0] == "fine" and dd["test"]["label"][0] == 1
    assert "it 's \"great\" 0" in {*dd["train"]["text"], *dd["validation"]["text"]}  # quotes kept, space stripped
    assert len(dd["train"]) + len(dd["validation"]) == 20 and len(dd["validation"]) == 2
    assert dd["train"].features["label"].names == ["negative", "positive"]
    assert len(info["files"]["train"]["sha256"]) == 64


def test_csv_json_jsonl_gz_and_parquet_read_the_same(ext):
    import pandas as pd

    rows = [{"review": f"text number {i}", "stars": "pos" if i % 2 else "neg"} for i in range(20)]
    files = {
        "csv": write(ext / "a.csv", pd.DataFrame(rows).to_csv(index=False)),
        "json": write(ext / "a.json", json.dumps(rows)),
        "jsonl": write(ext / "a.jsonl.gz", "".join(json.dumps(r) + "\n" for r in rows), gz=True),
    }
    pd.DataFrame(rows).to_parquet(ext / "a.parquet")
    files["parquet"] = "data/external/a.parquet"
    results = []
    for path in files.values():
        spec = spec_for(source="local", kind="classification", files={"train": path, "validation": path,
                                                                       "test": path},
                        columns={"text": "review", "label": "stars"})
        dd, _ = data.build("x", spec, 0)
        results.append((list(dd["test"]["text"]), list(dd["test"]["label"]), dd["test"].features["label"].names))
    assert all(r == results[0] for r in results)
    assert results[0][2] == ["neg", "pos"]


CONLL_IOB1 = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
Smith NNP I-NP B-PER
"""


def test_conll_iob1_is_converted_to_iob2(ext):
    path = write(ext / "train.iob1.conll", CONLL_IOB1 * 5)
    spec = spec_for(source="local", kind="ner", files={"train": path, "validation": path, "test": path},
                    scheme="iob1")
    dd, info = data.build("x", spec, 0)
    names = dd["test"].features["ner_tags"].feature.names
    first = [names[t] for t in dd["test"]["ner_tags"][0]]
    assert dd["test"]["tokens"][0] == ["EU", "rejects", "German", "call"]
    assert first == ["B-ORG", "O", "B-MISC", "O"]
    assert [names[t] for t in dd["test"]["ner_tags"][1]] == ["B-PER", "I-PER", "B-PER"]
    assert info["iob_repairs"] == 0  # conversion of an IOB1 source is not a repair


def test_invalid_iob2_transitions_are_repaired_and_counted(ext):
    path = write(ext / "bad.conll", "Peter I-PER\nsaid O\n\nOslo I-LOC\n")
    spec = spec_for(source="local", kind="ner", files={"train": path, "validation": path, "test": path})
    dd, info = data.build("x", spec, 0)
    assert info["iob_repairs"] == 2 * 3  # two repairs in each of the three splits read


def test_a_byte_order_mark_is_not_part_of_the_first_column(ext):
    path = write(ext / "excel.csv", "\ufefftext,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(10)))
    dd, _ = data.build("x", spec_for(source="local", kind="classification", files={"train": path}), 0)
    assert sum(len(dd[s]) for s in dd) == 20 and {t.split()[0] for t in dd["train"]["text"]} == {"good", "bad"}


@pytest.mark.parametrize("name, text, fields, message", [
    ("rows.csv", "text,label\nok,pos\nbroken,pos,extra\n", {}, "rows.csv:3: 3 fields where the header has 2"),
    ("rows.csv", "text,label\nok,pos\nfine,meh\n", {"label_names": ["neg", "pos"]}, "rows.csv:3: unknown label 'meh'"),
    ("rows.csv", "text,label\nok,pos\n  ,neg\n", {}, "rows.csv:3: empty text"),
    ("rows.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n', {}, "rows.jsonl:2: invalid JSON"),
    ("rows.jsonl", '{"txt": "a", "label": "x"}\n', {}, "rows.jsonl:1: no column 'text'"),
    ("tags.jsonl", '{"tokens": ["a", "b"], "ner_tags": ["O"]}\n', {"kind": "ner"}, "tags.jsonl:1: 2 tokens but 1 tags"),
    ("tags.conll", "a O\nb\n", {"kind": "ner"},
     "tags.conll:2: 1 column ('b'); a CoNLL line needs the token and its tag"),
    ("tags.conll", "a O\nb X-PER\n", {"kind": "ner"}, "tags.conll:2: tag 'X-PER' is not O, B-TYPE or I-TYPE"),
])
def test_bad_rows_are_named_by_file_and_line(ext, name, text, fields, message):
    path = write(ext / name, text)
    spec = spec_for(**{"source": "local", "kind": "classification", "files": {"train": path}, **fields})
    with pytest.raises(ScratchError) as e:
        data.build("x", spec, 0)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_path_outside_external_are_refused(ext):
    spec = spec_for(source="local", kind="corpus", files={"train": "data/external/nope.jsonl"})
    with pytest.raises(ScratchError, match="data/external/nope.jsonl: file not found"):
        data.build("x", spec, 0)
    with pytest.raises(ScratchError, match="must be a path under data/external/"):
        spec_for(source="local", kind="corpus", files={"train": "/tmp/elsewhere.csv"})


# ---------------------------------------------------------------- hub (offline, a local dataset directory)

def test_hub_source_loads_a_dataset_directory_with_the_same_call(workdir):
    from datasets import Dataset, Features, Value

    feats = Features({"sentence": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    repo = workdir / "hub_copy" / "data"
    repo.mkdir(parents=True)
    for split, n in (("train", 40), ("test", 10)):
        Dataset.from_dict({"sentence": [f"{split} {i}" for i in range(n)], "label": [i % 2 for i in range(n)]},
                          features=feats).to_parquet(repo / f"{split}-00000-of-00001.parquet")
    spec = spec_for(source="hub", kind="classification", path=str(workdir / "hub_copy"), revision="main",
                    splits={"validation": None}, columns={"text": "sentence"})
    dd, info = data.build("x", spec, 0)
    assert len(dd["test"]) == 10 and len(dd["validation"]) == 4 and len(dd["train"]) == 36
    assert dd["train"].features["label"].names == ["neg", "pos"]
    assert info["hub"]["revision"] == "main"


def test_hub_offline_fails_in_one_line_saying_what_to_do(tmp_path):
    import subprocess
    import sys

    from conftest import env

    text = DEFAULT_PARAMS.read_text().replace(
        "    ner:\n", "    imdb:\n      source: hub\n      kind: classification\n      path: stanfordnlp/imdb\n"
        "      revision: e6281661ce1c48d982bc483cf8a173c1bbeb5d31\n    ner:\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    e = env()
    e.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "scratchlm", "data", "--dataset", "imdb"], cwd=tmp_path,
                          capture_output=True, text=True, env=e, timeout=HUNG_AFTER_S)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "data.datasets.imdb.path = 'stanfordnlp/imdb' (revision" in proc.stderr and "cannot load it" in proc.stderr
    assert "source: local" in proc.stderr and "Traceback" not in proc.stderr


def _file_hashes(folder) -> dict:
    import hashlib
    from pathlib import Path

    return {str(f.relative_to(folder)): hashlib.md5(f.read_bytes()).hexdigest()
            for f in sorted(Path(folder).rglob("*")) if f.is_file()}


def test_data_output_is_byte_stable_and_later_stages_leave_it_alone(workdir, tiny_params):
    """DVC hashes data/raw/<name>: a rerun must give the same bytes, and tokenizing must not
    drop datasets' cache-*.arrow files into it (the stage commands run through the CLI)."""
    import yaml

    from scratchlm import cli

    (workdir / "params.yaml").write_text(yaml.safe_dump(tiny_params))
    assert cli.main(["data", "--dataset", "sentiment"]) == 0
    first = _file_hashes("data/raw/sentiment")
    assert cli.main(["data", "--dataset", "sentiment"]) == 0
    assert _file_hashes("data/raw/sentiment") == first
    assert cli.main(["data", "--dataset", "corpus"]) == 0
    assert cli.main(["tokenizer"]) == 0
    assert cli.main(["encode", "--task", "sentiment"]) == 0
    assert _file_hashes("data/raw/sentiment") == first


@pytest.mark.parametrize("unit, expected", [
    ("line", ["First line of one.", "Second line of one.", "Only line of two.", "Three."]),
    ("paragraph", ["First line of one. Second line of one.", "Only line of two.", "Three."]),
])
def test_plain_text_corpus_reads_one_document_per_line_or_paragraph(workdir, unit, expected):
    (workdir / "data/external").mkdir(parents=True)
    (workdir / "data/external/a.txt").write_text("First line of one.\nSecond line of one.\n\nOnly line of two.\n"
                                                 "\n\nThree.\n")
    spec = spec_for(source="local", kind="corpus", files={"train": "data/external/a.txt",
                                                          "validation": "data/external/a.txt",
                                                          "test": "data/external/a.txt"}, text_unit=unit)
    dd, _ = data.build("x", spec, 0)
    assert list(dd["train"]["text"]) == expected


def test_a_txt_file_is_conll_columns_for_ner_and_plain_text_for_a_corpus():
    from pathlib import Path

    from scratchlm.kinds import suffix_format

    assert suffix_format(Path("a/train.txt"), "ner") == "conll"
    assert suffix_format(Path("a/wiki.train.tokens"), "corpus") == "text"
    assert suffix_format(Path("a/b.txt.gz"), "corpus") == "text"
