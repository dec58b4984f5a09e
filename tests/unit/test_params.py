import copy
import subprocess
import sys

import pytest

from conftest import DEFAULT_PARAMS
from scratchlm import params
from scratchlm.errors import ScratchError


def test_default_params_are_valid_and_complete(default_params):
    assert {"full", "scratch"} <= set(default_params["finetune"]["methods"])
    assert default_params["pretrain"]["models"]["gru"]["cell"] == "gru"


def test_defaults_are_filled(tiny_params):
    raw = copy.deepcopy(tiny_params)
    del raw["evaluate"]
    del raw["pretrain"]["models"]["gru"]["num_layers"]
    filled = params.validate(raw)
    assert filled["evaluate"] == {"batch_size": 64}
    assert filled["pretrain"]["models"]["gru"]["num_layers"] == 1


def error_for(p: dict) -> str:
    with pytest.raises(ScratchError) as e:
        params.validate(p)
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p["finetune"]["training"].__setitem__("lr", -1), ["finetune.training.lr", "-1", "minimum"]),
    (lambda p: p.__setitem__("device", "tpu"), ["device", "'tpu'", "auto, cpu, cuda"]),
    (lambda p: p.__setitem__("precision", "fp8"), ["precision", "'fp8'", "auto, fp32, bf16, fp16"]),
    (lambda p: p["finetune"].__setitem__("methods", ["full", "lora"]),
     ["finetune.methods.1", "'lora'", "full, frozen, scratch"]),
    (lambda p: p["finetune"]["training"].__setitem__("lrr", 1), ["finetune.training", "'lrr'", "allowed keys", "lr"]),
    (lambda p: p.pop("tasks"), ["tasks is missing"]),
    (lambda p: p["pretrain"]["models"].__setitem__("Big-GRU", {"arch": "recurrent"}), ["Big-GRU", "lower-case"]),
    (lambda p: p["tasks"]["sentiment"].__setitem__("dataset", "imdb"),
     ["tasks.sentiment.dataset", "'imdb'", "declared"]),
    (lambda p: p["pretrain"].__setitem__("corpus", "ner"),
     ["pretrain.corpus", "is a ner dataset", "corpus or classification"]),
    (lambda p: p["pretrain"]["training"].__setitem__("batch_size", "big"), ["pretrain.training.batch_size", "big"]),
    (lambda p: p["pretrain"]["models"]["bert"].__setitem__("training", {"lr": -1}),
     ["pretrain.models.bert.training.lr", "-1"]),
    (lambda p: p["pretrain"]["models"]["gru"].__setitem__("training", {"lrr": 1}),
     ["pretrain.models.gru.training", "'lrr'", "allowed"]),
    (lambda p: p["pretrain"]["models"]["bert"].__setitem__("num_heads", 3), ["num_heads = 3 must divide hidden_size"]),
    (lambda p: p["finetune"]["overrides"].__setitem__("gpt", {"lr": 0.1}), ["finetune.overrides.gpt names no model"]),
    (lambda p: p["finetune"]["overrides"].__setitem__("gru", {"batch_size": 0}),
     ["finetune.overrides.gru.batch_size", "0"]),
    (lambda p: p["tasks"]["ner"].__setitem__("method_overrides", {"scratch": {"lr": 2}}),
     ["tasks.ner.method_overrides.scratch.lr = 2", "allowed: > 0 and <= 1"]),
    (lambda p: p["tasks"]["ner"].__setitem__("method_overrides", {"scrach": {"lr": 0.01}}),
     ["tasks.ner.method_overrides", "'scrach'", "full, frozen, scratch, lora"]),
    (lambda p: p["tasks"]["ner"].__setitem__("metric", "accuracy"),
     ["tasks.ner.metric = 'accuracy' does not apply to token-classification", "entity_f1"]),
    (lambda p: p["tasks"]["sentiment"].__setitem__("type", "token-classification"),
     ["tasks.sentiment.dataset", "is a classification dataset", "must be ner"]),
    (lambda p: p["finetune"]["lora"].__setitem__("models", ["gru"]),
     ["finetune.lora.models", "'gru'", "recurrent", "fused"]),
    (lambda p: p["finetune"]["lora"].__setitem__("models", ["gpt"]),
     ["finetune.lora.models", "'gpt'", "names no model"]),
    (lambda p: p["finetune"]["data_efficiency"].__setitem__("fractions", [1.5]),
     ["finetune.data_efficiency.fractions.0", "1.5"]),
    (lambda p: p["finetune"]["data_efficiency"].__setitem__("methods", ["lora"]),
     ["finetune.data_efficiency.methods.0", "'lora'", "full, frozen, scratch"]),
    (lambda p: p["finetune"]["ulmfit"].__setitem__("discriminative_decay", 0.5),
     ["finetune.ulmfit.discriminative_decay", "0.5"]),
    (lambda p: p["tasks"]["ner"].__setitem__("head", {"reader_hidden": 8}),
     ["tasks.ner.head.reader_hidden", "sequence-classification", "tagger_hidden"]),
    (lambda p: p["tasks"]["sentiment"].__setitem__("head", {"crf": True}),
     ["tasks.sentiment.head.crf", "token-classification", "remove tasks.sentiment.head"]),
    (lambda p: p["pretrain"]["models"]["gru"].__setitem__("sampled_softmax", 1),
     ["pretrain.models.gru.sampled_softmax = 1: not allowed", "0 (the full softmax), or at least 2"]),
])
def test_bad_values_give_one_line_naming_key_value_and_what_is_allowed(params_copy, mutate, expected):
    mutate(params_copy)
    message = error_for(params_copy)
    for part in expected:
        assert part in message, message


def test_exponent_floats_read_as_numbers(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("lr: 3e-4\nother: 1.5E+2\nname: e5\n")
    assert params.read_yaml(f) == {"lr": 3e-4, "other": 150.0, "name": "e5"}


def test_invalid_yaml_names_file_and_line(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("seed: 1\ndata: [unclosed\n")
    with pytest.raises(ScratchError, match=r"params.yaml:3: not valid YAML \(.*flow sequence that starts on line 2\)"):
        params.load(f)


def test_cli_reports_bad_params_in_one_line_without_traceback(tmp_path):
    bad = DEFAULT_PARAMS.read_text().replace("device: auto", "device: gpu")
    (tmp_path / "params.yaml").write_text(bad)
    proc = subprocess.run([sys.executable, "-m", "scratchlm", "check"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "device = 'gpu' is not allowed (allowed: auto, cpu, cuda)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_digest_is_stable(tiny_params):
    assert params.digest(tiny_params) == params.digest(copy.deepcopy(tiny_params))


@pytest.mark.parametrize("argv, expected", [
    (["finetune", "--task", "ner", "--model", "gru", "--run", "lora"], "no fine-tuning run 'lora' of gru on ner"),
    (["evaluate", "--task", "ner", "--model", "gru", "--run", "full-0.3"],
     "no fine-tuning run 'full-0.3'"),
    (["finetune", "--task", "pos", "--model", "gru", "--run", "full"], "tasks has no 'pos'"),
])
def test_cli_refuses_undeclared_runs_in_one_line(argv, expected, capsys):
    from scratchlm import cli

    assert cli.main(["--params", str(DEFAULT_PARAMS), *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err


@pytest.mark.parametrize("name", ["tiny", "paper", "real-cpu"])
def test_every_preset_merges_into_valid_params(name):
    from scratchlm import dag, presets

    raw = params.read_yaml(DEFAULT_PARAMS)
    presets.merge(raw, params.read_yaml(presets.PRESETS_DIR / f"{name}.yaml"))
    p = params.validate(raw)
    assert dag.runs(p)
    for key in dag.tracked_keys(p):  # written out, as DVC needs (the preset merges into params.yaml)
        dag.lookup(raw, key)
    if name == "paper":  # null removed the synthetic datasets and tasks
        assert set(p["data"]["datasets"]) == {"imdb", "sst2", "conll2003", "wikitext103"}
        assert set(p["tasks"]) == {"imdb", "sst2", "conll2003"}
    if name == "real-cpu":  # the public files under data/external/, a mixed pretraining corpus
        assert set(p["tasks"]) == {"conll2003", "sst2"} and p["data"]["datasets"]["text"]["source"] == "mix"
        assert all(f.startswith("data/external/") for f in p["data"]["datasets"]["conll2003"]["files"].values())
        assert len(p["finetune"]["seeds"]) >= 3 and {"full", "scratch"} <= set(p["finetune"]["methods"])
        for task in p["tasks"].values():  # both arms to convergence, each at its own rate, ULMFiT off
            assert task["training"]["scheduler"] == "constant_with_warmup"
            assert set(task["method_overrides"]) == {"full", "scratch"}
        assert not p["finetune"]["ulmfit"]["slanted_triangular"]


def test_preset_null_removes_entries_but_sets_plain_values():
    from scratchlm.presets import merge

    target = {"datasets": {"a": {"x": 1}, "b": {"x": 2}}, "checkpoint": "bert", "splits": {"validation": "dev"}}
    merge(target, {"datasets": {"a": None, "c": {"x": 3}}, "checkpoint": None, "splits": {"validation": None}})
    assert target == {"datasets": {"b": {"x": 2}, "c": {"x": 3}}, "checkpoint": None, "splits": {"validation": None}}


def test_preset_that_empties_a_commented_mapping_writes_valid_yaml(workdir):
    from scratchlm import presets

    (workdir / "params.yaml").write_text(DEFAULT_PARAMS.read_text())
    (workdir / "workflow/presets").mkdir(parents=True)
    (workdir / "workflow/presets/add.yaml").write_text(
        "pretrain: {models: {bert: {arch: bert}}}\nfinetune: {overrides: {bert: {lr: 0.001}}}\n")
    (workdir / "workflow/presets/mine.yaml").write_text(
        "pretrain: {models: {bert: null}}\nfinetune: {overrides: {bert: null}}\n")
    presets.apply("add")  # the repository's own presets are found first
    presets.apply("mine")
    p = params.load(workdir / "params.yaml")
    assert p["finetune"]["overrides"] == {} and "bert" not in p["pretrain"]["models"]
    assert "# per model" in (workdir / "params.yaml").read_text()  # comments survive


def test_did_you_mean_only_when_one_choice_is_close():
    assert params.did_you_mean("sentimnt", ["sentiment", "ner", "corpus"]) == "; did you mean 'sentiment'?"
    assert params.did_you_mean("classification", ["sequence-classification", "token-classification"]) == ""
    assert params.did_you_mean("gpu", ["auto", "cpu", "cuda"]) == ""


def test_schema_benchmark_names_are_the_published_table():
    """The schema's enum, the kinds params validation reads and scratchlm.published's references
    list the same benchmarks."""
    from scratchlm import schema
    from scratchlm.kinds import BENCHMARK_KINDS
    from scratchlm.published import BENCHMARKS

    enum = schema.schema()["$defs"]["reading"]["benchmark"]["enum"]
    assert set(enum) - {None} == set(BENCHMARKS) == set(BENCHMARK_KINDS)


@pytest.mark.parametrize("requested, device, capabilities, expected", [
    ("auto", "cpu", {"avx512_bf16": True}, "bf16"),
    ("auto", "cpu", {"amx_bf16": True}, "bf16"),
    ("auto", "cpu", {"avx2": True}, "fp32"),  # emulated bf16 would be slower than fp32
    ("fp32", "cpu", {"avx512_bf16": True}, "fp32"),
    ("bf16", "cpu", {"avx2": True}, "bf16"),  # asked for: allowed, only slower
])
def test_precision_follows_the_hardware_unless_set(monkeypatch, requested, device, capabilities, expected):
    import torch

    from scratchlm.devices import pick_precision

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert pick_precision(requested, device) == expected


def test_a_training_stage_on_the_cpu_keeps_freed_memory_for_its_next_step(monkeypatch, default_params):
    """training.start sets glibc's allocator (where the C library is glibc: every option accepted)."""
    import platform

    from scratchlm import devices, training

    if platform.libc_ver()[0] == "glibc":
        assert devices.keep_freed_memory()
    calls = []
    monkeypatch.setattr(training, "keep_freed_memory", lambda: calls.append(1) or True)
    training.start({**default_params, "device": "cpu"})
    assert calls == [1]


def test_fp16_on_cpu_fails_in_one_line_naming_the_fix():
    from scratchlm.devices import pick_precision

    with pytest.raises(ScratchError) as e:
        pick_precision("fp16", "cpu")
    assert str(e.value) == ("params.yaml: precision = 'fp16' needs a CUDA device (this run is on cpu); "
                            "set precision: auto, bf16 or fp32")


def test_a_preset_warns_when_it_leaves_committed_results_of_other_runs(workdir, capsys):
    from scratchlm import presets

    (workdir / "params.yaml").write_text(DEFAULT_PARAMS.read_text())
    for stale in ("results/metrics/ner/gru/full-0.1.json", "results/metrics/sentiment/gru/full.json"):
        (workdir / stale).parent.mkdir(parents=True, exist_ok=True)
        (workdir / stale).write_text("{}")
    presets.apply("tiny")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results/ holds 2 result files" in err
    assert "1 describe runs the preset does not declare" in err and "git checkout params.yaml dvc.lock results" in err


def test_a_missing_local_file_is_named_before_snakemake_plans(workdir):
    """Snakemake would plan nothing (an old report on disk) rather than name the file: check first.
    A mix's parts count, and the first missing file is the one named."""
    p = params.load(DEFAULT_PARAMS)
    p["data"]["datasets"]["text"] = {"source": "mix", "parts": {
        "reviews": {"source": "local", "files": {"train": "data/external/imdb/unsup.jsonl.gz"}}}}
    with pytest.raises(ScratchError) as e:
        params.check_local_files(p)
    assert str(e.value) == ("params.yaml: data.datasets.text.parts.reviews.files.train = "
                            "'data/external/imdb/unsup.jsonl.gz': file not found; put it there (the public "
                            "benchmarks' layout: data/external/README.md), or correct the path in params.yaml")
    (workdir / "data/external/imdb").mkdir(parents=True)
    (workdir / "data/external/imdb/unsup.jsonl.gz").write_bytes(b"")
    params.check_local_files(p)  # there now: no error
