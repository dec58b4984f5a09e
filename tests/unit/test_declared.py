"""The stage table is enforced: a stage's job sees the params the table declares for it and no
other (a read of another key fails, naming the stage and the key); what both front ends track for
a job is the same list; a data job depends on its own source's module only; the schema's defaults
are tracked where they can set a value."""

import json
from pathlib import Path

import pytest
import yaml

from conftest import DEFAULT_PARAMS, ROOT
from scratchlm import cli, dag, declared, methods, paths, schema
from scratchlm.training_config import TrainingConfig


def finetune_job(params, method: str = "full") -> dag.Job:
    return next(j for j in dag.jobs(params, "finetune") if j.run.method == method)


def test_a_stage_reading_an_undeclared_key_fails_naming_the_stage_and_the_key(tiny_params):
    own = declared.for_job(tiny_params, finetune_job(tiny_params))
    assert own["finetune"]["seeds"] == tiny_params["finetune"]["seeds"]
    assert own["tasks"]["sentiment"]["type"] == "sequence-classification"
    with pytest.raises(declared.UndeclaredParamError, match=r"stage finetune \(finetune@sentiment-gru-full\) read "
                                                            r"params key 'evaluate'"):
        own["evaluate"]
    # its training settings come from the settings stage's file (dag.TRAINING_INPUTS), not params
    for read in (lambda: own["finetune"].get("prompting"), lambda: own["finetune"]["training"],
                 lambda: "ner" in own["tasks"], lambda: own["pretrain"]["models"]):
        with pytest.raises(declared.UndeclaredParamError):
            read()
    with pytest.raises(TypeError, match="read-only"):
        own["seed"] = 1


def test_the_view_serialises_as_the_declared_data(tiny_params):
    own = declared.for_job(tiny_params, dag.Job("encode", {"task": "ner"}))
    plain = json.loads(json.dumps(own, sort_keys=True))
    assert plain == {"encode": tiny_params["encode"],
                     "tasks": {"ner": {k: tiny_params["tasks"]["ner"][k] for k in ("dataset", "type")}}}
    rebuild, args = own.__reduce__()  # what pickling (datasets' fingerprints) stores: the plain data
    assert rebuild is dict and json.loads(json.dumps(args[0])) == plain


def test_the_cli_gives_a_stage_its_view_and_an_undeclared_read_stops_it(workdir, tiny_params, monkeypatch):
    """What `python -m scratchlm <stage>` runs under both front ends: a stage that reads a key its
    table entry lacks (here: the tokenizer reading `encode`) stops before any work."""
    from scratchlm.stages import tokenizer

    (workdir / "params.yaml").write_text(yaml.safe_dump(tiny_params))
    seen = {}

    def reads_undeclared(params):
        seen["tokenizer"] = params["tokenizer"]["vocab_size"]
        return params["encode"]["max_length"]

    monkeypatch.setattr(tokenizer, "run", reads_undeclared)
    with pytest.raises(declared.UndeclaredParamError, match="stage tokenizer .* 'encode'"):
        cli.main(["tokenizer"])
    assert seen == {"tokenizer": tiny_params["tokenizer"]["vocab_size"]}


def test_each_run_kind_declares_what_its_methods_and_training_sections_read(tiny_params):
    prompt = dag.declared(next(j for j in dag.jobs(tiny_params, "finetune") if j.run.method == "prompt"))
    assert {"finetune.prompting", "pretrain.models.gru", "evaluate.batch_size"} <= set(prompt)
    assert "finetune.training" not in prompt and "finetune.pooling" not in prompt  # it trains nothing with them
    full = dag.declared(finetune_job(tiny_params))
    assert {"finetune.pooling", "finetune.ulmfit"} <= set(full)
    # its training settings: the settings stage's file of its model, which tracks the two sections
    assert "finetune.training" not in full and "finetune.overrides" not in full
    assert "results/settings/finetune/gru.json" in dag.inputs(tiny_params, finetune_job(tiny_params))
    assert dag.declared(dag.Job("settings", {"model": "gru"})) == ["finetune.training", "finetune.overrides"]
    assert "finetune.lora" not in full and "finetune.prompting" not in full
    lora = dag.declared(finetune_job(tiny_params, "lora"))
    assert "finetune.lora" in lora and "finetune.ulmfit" not in lora


def test_training_sections_are_tracked_where_they_are_read():
    """Each RunKind tracks the keys that hold the sections its training config merges."""
    from scratchlm.training_config import TRAINING_SECTIONS

    settings = [s for s in dag.STAGES.values() if s.settings_of]
    for kind in dag.RUN_KINDS.values():
        # the sections a settings stage writes come from its file, the others from params
        written = [k for s in settings if s.settings_of == kind.training and paths.SETTINGS in kind.inputs
                   for k in s.params]
        for section in TRAINING_SECTIONS[kind.training]:
            held = [*kind.params, *dag.STAGES["finetune"].params, *written]
            assert any(section == k or section.startswith(k + ".") for k in held), (kind.name, section)


def test_the_methods_of_each_run_kind_are_those_the_schema_allows():
    enums = schema.schema()["properties"]["finetune"]["properties"]
    assert set(dag.RUN_KINDS[""].methods) == set(enums["methods"]["items"]["enum"])
    assert set(dag.RUN_KINDS["_shots"].methods) == set(enums["prompting"]["properties"]["methods"]["items"]["enum"])
    ablation = schema.schema()["properties"]["adapt"]["properties"]["ablation"]["properties"]["methods"]
    assert set(dag.RUN_KINDS["_general"].methods) == set(ablation["items"]["enum"])
    assert set(methods.METHODS) == {m for kind in dag.RUN_KINDS.values() for m in kind.methods}


def test_training_keys_are_the_schemas():
    """The schema's $defs/training defines the training keys; TrainingConfig mirrors them."""
    keys = list(schema.schema()["$defs"]["training"]["properties"])
    assert [f for f in TrainingConfig.__dataclass_fields__ if f != "layers"] == keys


def test_only_a_synthetic_dataset_depends_on_the_generators(default_params):
    generators = "src/scratchlm/sources/synthetic.py"
    for stage in dag.STAGES:
        assert generators not in dag.code_deps(stage), stage
    p = yaml.safe_load(DEFAULT_PARAMS.read_text())
    p["data"]["datasets"]["mine"] = {"source": "local", "kind": "corpus", "files": {"train": "data/external/a.txt"}}
    from scratchlm import params

    p = params.validate(p)
    assert generators in dag.code(p, dag.Job("data", {"dataset": "corpus"}))
    mine = dag.code(p, dag.Job("data", {"dataset": "mine"}))
    assert generators not in mine and "src/scratchlm/sources/local.py" in mine


def test_a_mix_takes_no_synthetic_part(default_params):
    from scratchlm import params
    from scratchlm.errors import ScratchError

    p = yaml.safe_load(DEFAULT_PARAMS.read_text())
    p["data"]["datasets"]["text"] = {"source": "mix", "parts": {"corpus": {"source": "synthetic",
                                                                           "generator": "corpus"}}}
    with pytest.raises(ScratchError, match=r"data.datasets.text.parts.corpus is synthetic; a mix's parts are hub "
                                           r"or local datasets"):
        params.validate(p)


def test_the_defaults_file_is_the_schemas_and_a_stale_one_stops_every_command(tmp_path, monkeypatch):
    assert schema.DEFAULTS_FILE.read_text(encoding="utf-8") == schema.defaults_text(), \
        "workflow/schemas/defaults.yaml differs from the schema: run `scratchlm dag --write`"
    stale = tmp_path / "defaults.yaml"
    stale.write_text(schema.defaults_text().replace("default: 42", "default: 7", 1))
    monkeypatch.setattr(schema, "DEFAULTS_FILE", stale)
    from scratchlm.errors import ScratchError

    with pytest.raises(ScratchError, match=r"does not match params.schema.yaml .*run `scratchlm dag --write`"):
        schema.check_defaults_file()


def test_a_job_tracks_its_keys_and_the_defaults_that_can_fill_them(tiny_params):
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    job = dag.Job("evaluate", {"task": "ner", "model": "gru", "run": "full"})
    tracked = dag.tracked(raw, job)
    assert tracked["evaluate"] == raw["evaluate"] and tracked["tasks.ner.type"] == "token-classification"
    assert tracked[f"{dag.DEFAULTS}:properties.evaluate"]["properties"]["batch_size"] == {"default": 64}
    assert not [k for k in tracked if "tasks.additionalProperties" in k]  # a task's type and dataset have none
    finetune = dag.tracked(raw, finetune_job(tiny_params))
    assert finetune[f"{dag.DEFAULTS}:properties.tasks.additionalProperties"]["properties"]["head"]


def test_dvc_yaml_tracks_the_same_defaults_as_snakemake():
    stages = yaml.safe_load(dag.dvc_yaml())["stages"]
    finetune = next(p for p in stages["finetune"]["params"] if isinstance(p, dict))[dag.DEFAULTS]
    assert finetune == dag.default_keys(dag.STAGES["finetune"], dag.RUN_KINDS[""])
    assert "properties.tasks.additionalProperties" in finetune
    defaults = yaml.safe_load(schema.DEFAULTS_FILE.read_text())
    for key in finetune:
        dag.lookup(defaults, key)  # each names a node of the file (DVC refuses a missing key)


def test_explain_says_what_a_stage_reads_and_writes(capsys):
    assert cli.main(["--params", str(DEFAULT_PARAMS), "dag", "--explain", "finetune"]) == 0
    out = capsys.readouterr().out
    assert "params of the finetune_prompt runs" in out and "evaluate.batch_size" in out
    assert "src/scratchlm/stages/finetune.py" in out and "models/finetune/sentiment/gru/full" in out
    assert "scratch: trains every weight, from random initialisation" in out
    assert (ROOT / "docs/extending.md").read_text().count("scratchlm dag --explain") >= 1


def test_on_the_real_data_preset_no_job_runs_the_generators(tmp_path):
    """An edit to the synthetic generators reruns nothing of a run on real files, in either front end:
    no job's code (what Snakemake's rules list) and no stage's deps as DVC resolves dvc.yaml name them."""
    from dvc.repo import Repo

    from conftest import copy_repo
    from scratchlm import params, presets

    raw = params.read_yaml(DEFAULT_PARAMS)
    presets.merge(raw, params.read_yaml(presets.PRESETS_DIR / "real-cpu.yaml"))
    p = params.validate(yaml.safe_load(yaml.safe_dump(raw)))
    generators = "src/scratchlm/sources/synthetic.py"
    assert not [j.dvc_stage for j in dag.jobs(p) if generators in dag.code(p, j)]
    assert "src/scratchlm/sources/local.py" in dag.code(p, dag.Job("data", {"dataset": "text"}))
    repo = copy_repo(tmp_path / "repo")
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with Repo(str(repo)) as r:
        deps = {d.def_path for stage in r.index.stages for d in stage.deps}
    assert "src/scratchlm/sources/local.py" in deps and generators not in deps


def test_a_settings_job_tracks_what_its_model_sees_of_the_shared_training_section(tiny_params):
    """A model whose override pins lr: its settings (what Snakemake tracks and the file holds) do not
    change with finetune.training.lr, another model's do; a run's config from the file equals the
    one merged from params, the task's layer between the two."""
    import copy

    from scratchlm.training_config import model_layers, training_config

    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    raw["finetune"]["overrides"] = {"bert": {"lr": 0.0005}}
    bert, gru = (dag.Job("settings", {"model": m}) for m in ("bert", "gru"))
    before = {job.dvc_stage: dag.tracked(raw, job) for job in (bert, gru)}
    bert_before, gru_before = before["settings@bert"], before["settings@gru"]
    assert bert_before["finetune.overrides.bert"] == {"lr": 0.0005} and "lr" not in bert_before["finetune.training"]
    assert gru_before["finetune.training"]["lr"] == raw["finetune"]["training"]["lr"]
    assert gru_before["finetune.training"]["early_stopping_patience"] is not None  # defaults filled
    changed = copy.deepcopy(raw)
    changed["finetune"]["training"]["lr"] = 0.123
    assert dag.tracked(changed, bert) == bert_before and dag.tracked(changed, gru) != gru_before

    p = copy.deepcopy(tiny_params)
    p["finetune"]["overrides"] = {"bert": {"lr": 0.0005, "epochs": 2}}
    p["tasks"]["ner"]["training"] = {"lr": 0.01, "batch_size": 8}
    written = json.loads(json.dumps(model_layers(p, "finetune", "bert")))
    from_file = training_config({"tasks": p["tasks"]}, "finetune", "bert", "ner", written)
    assert from_file.replace(layers=()) == training_config(p, "finetune", "bert", "ner").replace(layers=())
    assert (from_file.lr, from_file.batch_size, from_file.epochs) == (0.0005, 8, 2)
    assert from_file.key("lr") == "finetune.overrides.bert.lr"
    assert from_file.key("batch_size") == "tasks.ner.training.batch_size"


def test_a_method_override_of_a_task_sets_that_arms_runs_last(tiny_params):
    """`tasks.<task>.method_overrides.<method>`: the learning rate of one arm (scratch here) on one
    task, over the model's override; the other arms, tasks and the settings file keep theirs."""
    import copy

    from scratchlm.training_config import model_layers, training_config

    p = copy.deepcopy(tiny_params)
    p["finetune"]["overrides"] = {"gru": {"lr": 0.002}}
    p["tasks"]["ner"]["method_overrides"] = {"scratch": {"lr": 0.004, "epochs": 3}}
    scratch = training_config(p, "finetune", "gru", "ner", method="scratch")
    assert (scratch.lr, scratch.epochs) == (0.004, 3)
    assert scratch.key("lr") == "tasks.ner.method_overrides.scratch.lr"
    assert training_config(p, "finetune", "gru", "ner", method="full").lr == 0.002
    assert training_config(p, "finetune", "gru", "sentiment", method="scratch").lr == 0.002
    assert "tasks.ner.method_overrides.scratch" not in model_layers(p, "finetune", "gru")
    written = json.loads(json.dumps(model_layers(p, "finetune", "gru")))
    assert training_config({"tasks": p["tasks"]}, "finetune", "gru", "ner", written, "scratch").lr == 0.004


def test_a_job_run_outside_snakemake_leaves_no_snakemake_record_of_its_outputs(workdir, tiny_params):
    """Snakemake's record of an output holds the checksum of the params stamp it was made with; a
    job that replaces the output (run by DVC, by hand) removes the record, so that Snakemake goes by
    the stamp's date instead of trusting a checksum that no longer describes the output."""
    from base64 import urlsafe_b64encode

    from scratchlm import stamps

    (workdir / "params.yaml").write_text(yaml.safe_dump(tiny_params))
    records = workdir / stamps.SNAKEMAKE_RECORDS
    records.mkdir(parents=True)
    mine, other = "results/settings/finetune/gru.json", "results/settings/finetune/bert.json"
    for out in (mine, other):
        (records / urlsafe_b64encode(out.encode()).decode()).write_text("{}")
    # a name longer than the file system allows: Snakemake's own layout, @-prefixed folders
    from snakemake.persistence.file import FilePersistence

    layout = type("Layout", (), {"_max_len": None, "_fetch_max_len": FilePersistence._fetch_max_len})()
    long = "models/" + "x" * 300
    nested = Path(FilePersistence._record_path(layout, str(records), long))
    nested.parent.mkdir(parents=True)
    nested.write_text("{}")
    stamps.forget_snakemake_records([long, "models/never-made"])  # one there, one not: no error
    assert not nested.exists()
    assert cli.main(["settings", "--model", "gru"]) == 0
    assert {p.name for p in records.iterdir() if p.is_file()} == {urlsafe_b64encode(other.encode()).decode()}
    written = json.loads((workdir / mine).read_text())["finetune.training"]
    assert written["lr"] == tiny_params["finetune"]["training"]["lr"]
