"""`scratchlm preset NAME` over the params.yaml layouts users have (the committed one, DVC's rewrite
after `dvc exp run -S`, comments after keys a preset empties, a plain dump): the file it writes reads
back as exactly the merge that was validated, and when the comment-keeping write cannot, a plain dump
(said in one line) or a refusal that leaves the file as it was (issue 35)."""

from __future__ import annotations

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
from scratchlm.params import read_yaml

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
