"""The stage table: dvc.yaml is what it generates, and each stage's code dependencies follow the
package's import graph (which stays visible: package imports at module top)."""

import ast
import copy
import re
from types import SimpleNamespace

import yaml

from conftest import ROOT
from scratchlm import dag, paths

PACKAGE = ROOT / "src/scratchlm"


def test_committed_dvc_yaml_is_the_generated_one():
    committed = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    assert committed == dag.dvc_yaml(), "dvc.yaml differs from the stage table: run `scratchlm dag --write`"


def test_dvc_yaml_declares_every_stage_and_run_kind():
    stages = yaml.safe_load(dag.dvc_yaml())["stages"]
    expected = {s for s in dag.STAGES if not dag.STAGES[s].runs}
    expected |= {s + kind for s in ("finetune", "evaluate") for kind in dag.RUN_KINDS}
    assert set(stages) == expected
    assert stages["encode"]["do"]["deps"][-2:] == ["data/raw/${item.dataset}", "models/tokenizer"]
    assert stages["finetune_fraction"]["cmd"].endswith("--run ${item.method}-${item.fraction}")
    lora = stages["finetune_lora"]["params"]
    assert "finetune.lora" in lora and "finetune.ulmfit" not in lora


def deps(stage: str) -> set[str]:
    return {d.removeprefix("src/scratchlm/") for d in dag.code_deps(stage)}


def test_each_stage_depends_on_the_modules_it_runs_and_no_others():
    common = {"__init__.py", "__main__.py", "cli.py", "dag.py", "params.py", "paths.py", "errors.py", "timing.py",
              "atomic.py", "stages/__init__.py"}
    for stage in dag.STAGES:
        assert common | {f"stages/{stage}.py"} <= deps(stage), stage
        assert not {f"stages/{other}.py" for other in dag.STAGES if other != stage} & deps(stage), stage
    assert {"models/recurrent.py", "training.py", "ulmfit.py", "finetuning.py", "metrics.py"} <= deps("finetune")
    assert {"models/recurrent.py", "models/bert.py", "tokenization.py", "metrics.py"} <= deps("evaluate")
    assert not {"training.py", "ulmfit.py", "compare.py"} & deps("evaluate")  # loads and predicts; trains nothing
    assert not {"training.py", "models/__init__.py"} & deps("data")
    assert {"compare.py", "figures.py"} <= deps("report") and "compare.py" not in deps("finetune")


def test_package_imports_are_at_module_top():
    """An import of our own modules inside a function hides an edge of the graph from a reader
    (the graph itself would still see it): they all sit at module level. The CLI imports the
    command's module by name (importlib), which is the table's doing."""
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            own = (isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("scratchlm"))) \
                or (isinstance(node, ast.Import) and any(a.name.startswith("scratchlm") for a in node.names))
            assert not own or id(node) in top, f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}"


def test_jobs_and_their_names(default_params):
    jobs = dag.jobs(default_params)
    assert [j.dvc_stage for j in jobs[:4]] == ["data@sentiment", "data@ner", "data@corpus", "tokenizer"]
    assert jobs[-1] == dag.Job("report", {})
    finetune = [j for j in jobs if j.stage == "finetune"]
    assert len(finetune) == len(dag.runs(default_params))
    assert finetune[0].name == "sentiment/gru/full" and finetune[0].args() == [
        "--task", "sentiment", "--model", "gru", "--run", "full"]
    assert dag.fill(dag.STAGES["pack"].outs[0].template, default_params) == "data/blocks/corpus"
    report_inputs = dag.inputs(default_params, dag.Job("report", {}))
    assert "results/metrics/ner/gru/full-0.1.json" in report_inputs and "results/timing/pack.json" in report_inputs
    assert not [i for i in report_inputs if i.startswith(("models/", "data/"))]


def test_the_longest_runs_are_scheduled_first(default_params):
    """By epoch cap: a share of the labels multiplies it, a scratch control goes before its pretrained
    run, an adaptation goes with the longest run that waits for it; other stages wait their turn."""
    p = copy.deepcopy(default_params)
    p["tasks"]["ner"]["training"] = {"epochs": 12}
    p["tasks"]["sentiment"]["training"] = {"epochs": 5}
    order = {f"{j.stage} {j.name}": j.priority(p) for j in dag.jobs(p)}
    assert order["finetune ner/gru/scratch"] == 25 and order["finetune ner/gru/full"] == 24
    assert order["adapt ner/gru/seed42"] == 241 and order["adapt sentiment/gru/seed42"] == 11
    assert order["finetune sentiment/gru/scratch"] == 11 and order["finetune ner/gru/scratch-0.1"] == 241
    assert order["evaluate ner/gru/scratch"] == order["pretrain gru/seed42"] == 0


def test_a_task_training_knob_reruns_its_fine_tuning_not_its_encoding(default_params):
    """encode reads a task's dataset and type, evaluate its type (the rest it finds in the model);
    its head and training knobs are fine-tuning's."""
    encode = dag.declared(dag.Job("encode", {"task": "ner"}))
    assert set(encode) == {"tasks.ner.dataset", "tasks.ner.type", "encode"}
    finetune = next(j for j in dag.jobs(default_params, "finetune") if j.wildcards["task"] == "ner")
    assert "tasks.ner" in dag.declared(finetune)
    evaluate = dag.declared(dag.Job("evaluate", finetune.wildcards))
    assert set(evaluate) == {"device", "evaluate", "tasks.ner.type", "finetune.seeds"}


def test_a_dry_run_plan_reads_as_dvc_stage_names_with_their_reasons():
    """Each rule's message is its job's one line (`Job N: <message>`, and the reason under `-q host`)."""
    from scratchlm.frontends import planned

    message = dag.snakemake_message("finetune").format(
        wildcards=SimpleNamespace(task="ner", model="gru", run="full-0.1"), log="logs/finetune/ner/gru/full-0.1.log")
    assert message == "finetune ner/gru/full-0.1 (log: logs/finetune/ner/gru/full-0.1.log)"
    plan = (f"Building DAG of jobs...\n[Fri Dec  4 21:59:39 2026]\nJob 3: {message}\n"
            "Reason: Updated input files: src/scratchlm/training.py\n[Fri Dec  4 21:59:39 2026]\n"
            "Job 2: pack (log: logs/pack.log)\nReason: Missing output files: d\n\nlocalrule all:\n"
            "    input: results/report.md\n    jobid: 0\n"
            "    reason: Input files updated by another job: results/report.md\n")
    assert planned(plan) == {"finetune_fraction@ner-gru-full-0.1": "Updated input files: src/scratchlm/training.py",
                             "pack": "Missing output files: d"}
    # the profile's `quiet: reason`: the jobs alone
    assert planned(re.sub(r"Reason: .*\n", "", plan)) == {"finetune_fraction@ner-gru-full-0.1": "", "pack": ""}
    # a message of no stage, or with the wrong number of wildcards, is no job
    assert dag.job_of_message("finetune ner/gru (log: x)") is None and dag.job_of_message("all (log: x)") is None


def test_training_jobs_get_the_console_their_output_goes_to_the_log():
    cmd = dag.snakemake_command("finetune")
    assert cmd.startswith("SCRATCHLM_CONSOLE_FD=3 OMP_NUM_THREADS={threads} python -m scratchlm finetune")
    assert cmd.endswith(" 3>&2 > {log} 2>&1")  # fd 3 is taken from the console before stderr goes to the log
    # any job's warnings reach the console too (console.warn); only training jobs set torch's threads
    assert dag.snakemake_command("report") == "SCRATCHLM_CONSOLE_FD=3 python -m scratchlm report 3>&2 > {log} 2>&1"


def test_reconcile_plans_with_the_messages_whatever_the_users_environment(monkeypatch):
    """With SCRATCHLM_JOB_BLOCKS=1 the dry run has no messages, `planned` finds no job, and
    reconcile would record every job DVC calls stale as done: its plan never inherits it."""
    import subprocess

    from scratchlm import frontends

    seen = {}

    def fake_run(cmd, **kwargs):
        seen.update(kwargs["env"])
        return subprocess.CompletedProcess(cmd, 0, "Job 2: pack (log: logs/pack.log)\n", "")

    monkeypatch.setenv(dag.JOB_BLOCKS_ENV, "1")
    monkeypatch.setattr(frontends.subprocess, "run", fake_run)
    assert frontends.planned(frontends._plan()) == {"pack": ""}
    assert dag.JOB_BLOCKS_ENV not in seen and "PATH" in seen


def test_pretraining_seeds_make_one_lm_per_model_and_seed_and_runs_read_each(default_params):
    """pretrain.seeds [7, 8]: two LMs per model, each adapted to each task; a fine-tuning run reads
    both (Snakemake: each LM's folder; DVC, which cannot expand a list in a matrix entry: the
    model's folder above them), and its k-th seed starts from LM k mod 2."""
    default_params["pretrain"]["seeds"] = [7, 8]
    default_params["finetune"]["seeds"] = [1, 2, 3]
    pretrain = [j.dvc_stage for j in dag.jobs(default_params, "pretrain")]
    assert pretrain == ["pretrain@gru-7", "pretrain@gru-8"]
    job = dag.jobs(default_params, "pretrain")[1]  # its name (timing file, log, console line) says which seed
    assert job.name == "gru/seed8" and job.args() == ["--model", "gru", "--seed", "8"]
    assert str(paths.timing("pretrain", job.name)) in job.outputs(default_params)
    line = dag.snakemake_message("pretrain").format(wildcards=SimpleNamespace(**job.wildcards), log="x.log")
    assert line == "pretrain gru/seed8 (log: x.log)" and dag.job_of_message(line) == job
    adapt = dag.jobs(default_params, "adapt")
    assert len(adapt) == 4 and dag.inputs(default_params, adapt[0])[1] == "models/pretrain/gru/seed7"
    finetune = next(j for j in dag.jobs(default_params, "finetune") if j.wildcards["run"] == "full")
    read = dag.inputs(default_params, finetune)
    assert {"models/adapt/sentiment/gru/seed7", "models/adapt/sentiment/gru/seed8"} <= set(read)
    assert "pretrain.seeds" in dag.declared(finetune)
    assert [dag.lm_seed(default_params, s) for s in (1, 2, 3)] == [7, 8, 7]
    stages = yaml.safe_load(dag.dvc_yaml())["stages"]
    assert stages["pretrain"]["matrix"] == {"model": "${pretrain.models}", "seed": "${pretrain.seeds}"}
    assert "models/adapt/${item.task}/${item.model}" in stages["finetune"]["deps"]
    assert "models/pretrain/${item.model}" in stages["finetune_general"]["deps"]
    # the LM's own seed trains it; the global one picks the validation blocks every LM is scored on
    assert "seed" in dag.declared(dag.jobs(default_params, "pretrain")[0])
