"""`scratchlm preset NAME` over the params.yaml layouts users have (the committed one, DVC's rewrite
after `dvc exp run -S`, comments after keys a preset empties, a plain dump): the file it writes reads
back as exactly the merge that was validated, and when the comment-keeping write cannot, a plain dump
(said in one line) or a refusal that leaves the file as it was (issue 35). `--keep-data` over the
user's own datasets and tasks (issue 34)."""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from ruamel.yaml import YAML

from scratchlm import presets
from scratchlm.errors import ScratchError
from scratchlm.params import read_yaml, validate

ROOT = Path(__file__).resolve().parents[2]
PRESETS = presets.available()
FALLBACK = "comments could not be kept"


def committed_params() -> str:
    """HEAD's params.yaml: the working tree's may hold a preset or an edit in progress."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    done = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"no committed params.yaml: {done.stderr.strip()}")
    return done.stdout


def dvc_set(text: str, tmp: Path, override: str = "finetune.training.lr=0.003") -> str:
    """`text` as `dvc exp run -S <override>` leaves it: DVC's own code rewrites params.yaml with
    ruamel, and its flow lists come back as block lists."""
    hydra = pytest.importorskip("dvc.utils.hydra")
    path = tmp / "dvc-rewrite.yaml"
    path.write_text(text, encoding="utf-8")
    hydra.apply_overrides(path, [override])
    return path.read_text(encoding="utf-8")


def commented(text: str) -> str:
    """A comment after every key and flow collection that has none (`tasks: [ner]  # note`)."""
    return "".join(line if "#" in line else re.sub(r"([:\]}])$", r"\1  # note", line)
                   for line in text.splitlines(keepends=True))


def read_yaml_text(text: str):
    """`text` as `read_yaml` reads params.yaml (`3e-4` is a float, a key given twice is refused)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "params.yaml").write_text(text, encoding="utf-8")
        return read_yaml(Path(tmp) / "params.yaml")


def preset_overlay(name: str) -> dict:
    overlay = read_yaml(presets.presets_dir() / f"{name}.yaml") or {}
    overlay.setdefault("report", {})["preset"] = name
    return overlay


def expected_merge(text: str, name: str) -> dict:
    params = read_yaml_text(text)
    presets.merge(params, preset_overlay(name))
    return params


def typed(data) -> str:
    """JSON tells 1 from 1.0 and true, which == does not."""
    return json.dumps(data, sort_keys=True, default=str)


def apply_in(tmp_path, monkeypatch, text: str, name: str) -> str:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(text, encoding="utf-8")
    presets.apply(name, "params.yaml")
    return Path("params.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("layouts")
    committed = committed_params()
    with_notes = commented(committed)
    assert read_yaml_text(with_notes) == read_yaml_text(committed)
    after_tiny = YAML()
    doc = after_tiny.load(committed)
    presets.merge(doc, preset_overlay("tiny"))
    buf = io.StringIO()
    after_tiny.dump(doc, buf)
    return {
        "committed": committed,
        "dvc-rewritten": dvc_set(committed, tmp),
        "commented": with_notes,
        "commented-dvc-rewritten": dvc_set(with_notes, tmp),
        "safe-dump": yaml.safe_dump(read_yaml_text(committed), sort_keys=False),
        "tiny-then-dvc-rewritten": dvc_set(buf.getvalue(), tmp, "finetune.training.epochs=2"),
    }


def test_the_presets_are_found():
    assert {"tiny", "real-cpu", "paper"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_applied_twice_changes_nothing_the_second_time(layouts, name, tmp_path, monkeypatch):
    once = apply_in(tmp_path, monkeypatch, layouts["committed"], name)  # its nulls removed what they name
    presets.apply(name, "params.yaml")  # and find nothing to remove the second time
    assert typed(read_yaml(tmp_path / "params.yaml")) == typed(read_yaml_text(once))


def test_a_null_removes_named_entries_and_is_a_value_elsewhere():
    params = {"tasks": {"ner": {"dataset": "ner"}}, "pretrain": {"models": {}},
              "data": {"datasets": {"imdb": {"splits": {"train": "train"}}}}}
    presets.merge(params, {"tasks": {"ner": None, "sst2": None}, "pretrain": {"models": {"gru": None}},
                           "data": {"datasets": {"imdb": {"splits": {"validation": None}}}}})
    assert params["tasks"] == {}  # removed, and the absent one stays absent
    assert params["pretrain"] == {"models": {}}
    assert params["data"]["datasets"]["imdb"]["splits"] == {"train": "train", "validation": None}  # carve one


@pytest.mark.parametrize("layout", ["committed", "dvc-rewritten", "commented", "commented-dvc-rewritten",
                                    "safe-dump", "tiny-then-dvc-rewritten"])
@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_over_each_layout_writes_exactly_the_merge_and_keeps_comments(
        layouts, layout, name, tmp_path, monkeypatch, capsys):
    original = layouts[layout]
    result = apply_in(tmp_path, monkeypatch, original, name)
    expected = expected_merge(original, name)
    assert typed(read_yaml(tmp_path / "params.yaml")) == typed(expected)
    assert FALLBACK not in capsys.readouterr().err  # the merge itself writes valid YAML: no fallback needed
    first = original.splitlines()[0]
    if first.startswith("#"):
        assert first in result


def test_the_issue_sequence_dvc_set_then_tiny(tmp_path, monkeypatch, capsys):
    """`dvc exp run -S finetune.training.lr=0.003`, then `scratchlm preset tiny`: it used to report
    success and leave `methods: -` on one line, which no YAML reader reads."""
    rewritten = dvc_set(committed_params(), tmp_path)
    assert "methods:\n" in rewritten  # DVC turned flow lists into block lists: the layout that broke
    work = tmp_path / "work"
    work.mkdir()
    try:
        apply_in(work, monkeypatch, rewritten, "tiny")
    except ScratchError as e:  # a refusal is allowed, but only with the file untouched
        assert "\n" not in str(e) and (work / "params.yaml").read_text(encoding="utf-8") == rewritten
        return
    params = read_yaml(work / "params.yaml")
    assert typed(params) == typed(expected_merge(rewritten, "tiny"))
    assert params["finetune"]["training"]["lr"] == 0.003  # the experiment's value survives the preset
    assert params["finetune"]["data_efficiency"]["tasks"] == []
    assert FALLBACK not in capsys.readouterr().err


ISSUE_SNIPPET = """\
finetune:
  data_efficiency:      # the same runs on a fraction of the training labels
    tasks:              # not sentiment
    - ner
    models:
    - gru
    methods:
    - full
    - scratch
  methods: [full, scratch]   # scratch: the control
"""


def test_merge_over_block_lists_keeps_valid_yaml_comments_and_flow_style():
    """The root cause: a list replacing a block list kept its slot for the comments before the first
    entry, which ruamel then wrote after the new flow value, pulling the next `-` onto `methods:`."""
    rt = YAML()
    doc = rt.load(ISSUE_SNIPPET)
    presets.merge(doc, {"finetune": {"data_efficiency": {"tasks": [], "models": []}, "methods": ["full"]}})
    buf = io.StringIO()
    rt.dump(doc, buf)
    text = buf.getvalue()
    assert read_yaml_text(text) == {"finetune": {"data_efficiency": {"tasks": [], "models": [],
                                                                     "methods": ["full", "scratch"]},
                                                 "methods": ["full"]}}
    assert re.search(r"tasks: \[\] +# not sentiment", text)
    assert re.search(r"methods: \[full\] +# scratch: the control", text)  # a flow list stays one


def bad_dump(kind: str):
    """A stand-in for ruamel's dump that writes other values, invalid YAML, or fails."""
    real = YAML.dump

    def dump(self, data, stream):
        buf = io.StringIO()
        real(self, data, buf)
        if kind == "raises":
            raise RuntimeError("representer\nfailed")
        stream.write(buf.getvalue().replace("vocab_size:", "vocab_size: 7\n  old_vocab_size:", 1)
                     if kind == "other values" else buf.getvalue() + "methods: -\n  full\n- scratch\n")
    return dump


@pytest.mark.parametrize(("kind", "why"), [("other values", "reads back differently at tokenizer"),
                                         ("invalid YAML", "not valid YAML"), ("raises", "ruamel failed: RuntimeError")])
def test_a_round_trip_that_does_not_read_back_falls_back_to_a_plain_dump(kind, why, tmp_path, monkeypatch, capsys):
    original = committed_params()
    monkeypatch.setattr(YAML, "dump", bad_dump(kind))
    result = apply_in(tmp_path, monkeypatch, original, "tiny")
    assert typed(read_yaml(tmp_path / "params.yaml")) == typed(expected_merge(original, "tiny"))
    assert "#" not in result  # the plain dump: no comments, and said so
    err = [line for line in capsys.readouterr().err.splitlines() if FALLBACK in line]
    assert len(err) == 1 and err[0].startswith("preset: warning: params.yaml's comments could not be kept")
    assert why in err[0] and err[0].endswith("wrote a plain YAML dump")


def test_when_no_write_reads_back_the_preset_is_refused_and_the_file_unchanged(tmp_path, monkeypatch, capsys):
    original = committed_params()
    monkeypatch.setattr(YAML, "dump", bad_dump("other values"))
    monkeypatch.setattr(presets, "_plain_dump", lambda params: "report: {title: x}\n")
    with pytest.raises(ScratchError) as e:
        apply_in(tmp_path, monkeypatch, original, "tiny")
    assert "\n" not in str(e.value) and "params.yaml" in str(e.value) and "unchanged" in str(e.value)
    assert (tmp_path / "params.yaml").read_text(encoding="utf-8") == original
    assert "merged" not in capsys.readouterr().out
    assert not list(tmp_path.glob(".params.yaml.tmp-*"))  # no temp sibling left either


def test_the_plain_dump_quotes_strings_our_reader_would_take_for_numbers_or_booleans():
    params = {"a": "3e-4", "b": 3e-4, "c": "yes", "d": "1.0", "e": True, "f": None, "g": "±"}
    assert typed(read_yaml_text(presets._plain_dump(params))) == typed(params)


def test_mismatch_names_the_first_key_that_differs():
    assert presets._mismatch("a: {b: [1, 2]}\n", {"a": {"b": [1, 2]}}) is None
    assert "a.b[1]" in presets._mismatch("a: {b: [1, 2.0]}\n", {"a": {"b": [1, 2]}})  # 2.0 is not 2
    assert "a.c" in presets._mismatch("a: {b: 1}\n", {"a": {"b": 1, "c": 2}})
    assert "line 3: not valid YAML" in presets._mismatch("a:\n- b\nc: -\n  d\n- e\n", {})


# --- `scratchlm preset tiny --keep-data`: a smoke run over the user's own datasets and tasks (issue 34) ---

def own_data_text(committed: str, alias: bool = False) -> str:
    """The committed params with the real-cpu preset's datasets, tasks and model (local CoNLL-2003,
    SST-2 and an IMDB mix; an LSTM; no demo dataset, task or GRU), comments kept; `alias`: the
    mix's CoNLL-2003 part written as an alias of the task's dataset, as a user copying the preset
    would. `apply` validates params only: the files need not exist."""
    rt = YAML()
    rt.width = 120
    doc = rt.load(committed)
    presets.merge(doc, read_yaml(presets.presets_dir() / "real-cpu.yaml"))
    if alias:
        doc["data"]["datasets"]["text"]["parts"]["conll2003"] = doc["data"]["datasets"]["conll2003"]
    buf = io.StringIO()
    rt.dump(doc, buf)
    return buf.getvalue()


def local_sentiment_text(committed: str) -> str:
    """The committed params with `sentiment` read from local SST-2 files: the preset's
    `data.datasets.sentiment: {train: 200, ...}` are keys a local dataset does not have."""
    rt = YAML()
    doc = rt.load(committed)
    doc["data"]["datasets"]["sentiment"] = {
        "source": "local", "kind": "classification", "label_names": ["negative", "positive"],
        "files": {"train": "data/external/sst2/train.tsv", "test": "data/external/sst2/dev.tsv"}}
    buf = io.StringIO()
    rt.dump(doc, buf)
    return buf.getvalue()


def without_samples(datasets: dict) -> dict:
    def strip(spec: dict) -> dict:
        spec = {k: v for k, v in spec.items() if k != "sample"}
        if "parts" in spec:
            spec["parts"] = {part: strip(sub) for part, sub in spec["parts"].items()}
        return spec
    return {name: strip(spec) for name, spec in datasets.items()}


@pytest.mark.parametrize("alias", [False, True], ids=["plain", "alias"])
def test_keep_data_keeps_own_datasets_and_tasks_and_samples_each_one(alias, tmp_path, monkeypatch, capsys):
    original = own_data_text(committed_params(), alias)
    before = read_yaml_text(original)
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(original, encoding="utf-8")
    presets.apply("tiny", "params.yaml", keep_data=True)
    result = Path("params.yaml").read_text(encoding="utf-8")
    after = read_yaml(tmp_path / "params.yaml")
    validate(copy.deepcopy(after), "kept")  # it validates
    assert FALLBACK not in capsys.readouterr().err
    assert result.splitlines()[0] == original.splitlines()[0]  # comments kept
    if alias:
        assert re.search(r"conll2003: \*\w+", original) and re.search(r"conll2003: \*\w+", result)
    datasets = after["data"]["datasets"]
    assert set(datasets) == {"conll2003", "sst2", "text"}  # no demo dataset joined
    assert without_samples(datasets) == without_samples(before["data"]["datasets"])
    sampled = [datasets["conll2003"], datasets["sst2"], *datasets["text"]["parts"].values()]
    assert len(sampled) == 5 and all(spec["sample"] == presets.OWN_DATA_SAMPLE for spec in sampled)
    assert "sample" not in datasets["text"]  # the mix is the sum of its sampled parts
    # a part with the name and spec of a task's dataset keeps that dataset's splits
    assert datasets["text"]["parts"]["conll2003"] == datasets["conll2003"]
    assert after["tasks"] == before["tasks"]
    # their tasks set their own schedule, which ULMFiT's slanted triangular rates would replace
    assert any("scheduler" in task.get("training", {}) for task in before["tasks"].values())
    assert after["finetune"]["ulmfit"]["slanted_triangular"] == before["finetune"]["ulmfit"]["slanted_triangular"]
    tiny = read_yaml(presets.presets_dir() / "tiny.yaml")
    models = after["pretrain"]["models"]
    assert models["bert"] == tiny["pretrain"]["models"]["bert"]  # added, as the preset adds it
    assert models["lstm"] == before["pretrain"]["models"]["lstm"]  # the user's own, as merged as usual
    assert "gru" not in models  # tiny only resizes the demo's GRU, which these params do not declare
    assert after["adapt"]["ablation"]["models"] == []  # and its mention of the GRU is left out with it
    for section in ("pretrain", "adapt", "finetune"):
        assert after[section]["training"]["max_steps"] == tiny[section]["training"]["max_steps"]
    assert after["tokenizer"]["vocab_size"] == tiny["tokenizer"]["vocab_size"]
    assert after["report"]["preset"] == "tiny --keep-data" and after["report"]["smoke"] is True


def test_keep_data_keeps_a_smaller_sample_and_sizes_synthetic_datasets_as_the_preset(tmp_path, monkeypatch):
    rt = YAML()
    doc = rt.load(committed_params())
    doc["data"]["datasets"]["reviews"] = {
        "source": "local", "kind": "classification", "files": {"train": "data/external/reviews.csv"},
        "sample": {"train": 80, "test": 500}}
    buf = io.StringIO()
    rt.dump(doc, buf)
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(buf.getvalue(), encoding="utf-8")
    presets.apply("tiny", "params.yaml", keep_data=True)
    after = read_yaml(tmp_path / "params.yaml")
    datasets, tiny = after["data"]["datasets"], read_yaml(presets.presets_dir() / "tiny.yaml")
    assert datasets["reviews"]["sample"] == {"train": 80, "validation": 50, "test": 50}  # 80 < 200 stays
    for name in ("sentiment", "ner", "corpus"):  # synthetic: the preset's sizes, as without --keep-data
        assert {k: datasets[name][k] for k in ("train", "validation", "test")} == tiny["data"]["datasets"][name]
        assert "sample" not in datasets[name]
    assert after["tasks"] == read_yaml_text(committed_params())["tasks"]  # tiny's sentiment head not merged
    assert after["pretrain"]["models"]["gru"]["hidden_size"] == 32  # the demo's GRU, resized as usual
    assert after["report"]["preset"] == "tiny --keep-data"
    again = (tmp_path / "params.yaml").read_text(encoding="utf-8")
    presets.apply("tiny", "params.yaml", keep_data=True)  # applied twice: nothing more changes
    assert (tmp_path / "params.yaml").read_text(encoding="utf-8") == again


@pytest.mark.parametrize("layout", ["real-cpu", "local sentiment"])
def test_without_keep_data_own_data_is_refused_in_one_line_naming_keep_data(layout, tmp_path, monkeypatch, capsys):
    committed = committed_params()
    original = own_data_text(committed) if layout == "real-cpu" else local_sentiment_text(committed)
    with pytest.raises(ScratchError) as e:
        apply_in(tmp_path, monkeypatch, original, "tiny")
    message = str(e.value)
    assert "\n" not in message and "scratchlm preset tiny --keep-data" in message
    assert "data.datasets.sentiment" in message
    if layout == "local sentiment":
        assert "unknown keys 'train', 'validation', 'test'" in message
    assert (tmp_path / "params.yaml").read_bytes() == original.encode("utf-8")
    assert "merged" not in capsys.readouterr().out


def test_a_refusal_over_the_demo_datasets_gives_no_keep_data_hint(tmp_path, monkeypatch):
    """The hint is for own data only: a preset that fails over the demo's synthetic datasets says why alone."""
    (tmp_path / "workflow" / "presets").mkdir(parents=True)
    (tmp_path / "workflow" / "presets" / "broken.yaml").write_text("tokenizer: {vocab_size: 0}\n", encoding="utf-8")
    with pytest.raises(ScratchError) as e:
        apply_in(tmp_path, monkeypatch, committed_params(), "broken")
    assert "tokenizer.vocab_size" in str(e.value) and "--keep-data" not in str(e.value)


def test_the_cli_takes_keep_data(tmp_path, monkeypatch, capsys):
    from scratchlm import cli

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "own.yaml"
    path.write_text(own_data_text(committed_params()), encoding="utf-8")
    assert cli.main(["--params", str(path), "preset", "tiny", "--keep-data"]) == 0
    assert "keeping its datasets and tasks" in capsys.readouterr().out
    assert read_yaml(path)["report"]["preset"] == "tiny --keep-data"
    assert cli.main(["--params", str(path), "preset", "tiny"]) == 1  # without it: refused, in one line
    assert "--keep-data" in capsys.readouterr().err
