"""Snakefile and dvc.yaml declare the same stages, commands, outputs and dependencies, so the
two front ends cannot drift apart."""

import re

import pytest

from conftest import run
from scratchlm.dag import Job


def snakemake_jobs(repo) -> dict:
    """command -> (DVC stage name, outputs, inputs), from the job blocks of a forced dry run."""
    # each job's block of inputs and outputs (the console shows the rules' one-line messages)
    text = run(["env", "SCRATCHLM_JOB_BLOCKS=1", "snakemake", "--dry-run", "--forceall", "--printshellcmds"],
               repo).stdout
    jobs: dict = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", text)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
        shell = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        if rule == "all" or not shell:
            continue
        cmd = re.sub(r"^SCRATCHLM_CONSOLE_FD=3 (OMP_NUM_THREADS=\S+ )?", "", shell.group(1).strip())
        cmd = re.sub(r"( 3>&2)? > \S+ 2>&1$", "", cmd)
        wildcards = dict(w.split("=", 1) for w in fields.get("wildcards", "").split(", ") if w)
        jobs[cmd] = (Job(rule, wildcards).dvc_stage, set(fields["output"].split(", ")),
                     set(fields.get("input", "").split(", ")) - {""})
    return jobs


def dvc_stages(repo) -> dict:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        return {s.cmd: (s.name, {o.def_path for o in s.outs},
                        {d.def_path for d in s.deps if not isinstance(d, ParamsDependency)})
                for s in r.index.stages}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from conftest import copy_repo

    repo = copy_repo(tmp_path_factory.mktemp("frontends"))
    return snakemake_jobs(repo), dvc_stages(repo)


def test_same_stage_names_and_commands(both):
    sm, dvc = both
    assert {c: v[0] for c, v in sm.items()} == {c: v[0] for c, v in dvc.items()}


def test_same_outputs(both):
    sm, dvc = both
    for cmd, (name, outs, _) in sm.items():
        assert outs == dvc[cmd][1], name


def test_same_dependencies(both):
    """Snakemake lists files where DVC may list the folder that holds them (report's inputs); its
    params stamps (.scratchlm/params/) are what DVC tracks as params instead."""
    sm, dvc = both
    for cmd, (name, _, ins) in sm.items():
        assert f".scratchlm/params/{name}.json" in ins, name
        ins = {i for i in ins if not i.startswith(".scratchlm/")}
        deps = dvc[cmd][2]
        covered = {i for i in ins if any(i == d or i.startswith(d.rstrip("/") + "/") for d in deps)}
        assert covered == ins, f"{name}: Snakemake inputs missing from dvc.yaml deps: {ins - covered}"
        used = {d for d in deps if any(i == d or i.startswith(d.rstrip("/") + "/") for i in ins)}
        assert used == deps, f"{name}: dvc.yaml deps missing from Snakemake inputs: {deps - used}"


def minimal(params: dict, keys: list[str]) -> dict:
    """Only the given keys of params (nested as they are), with their values."""
    from scratchlm.dag import lookup

    out: dict = {}
    for key in keys:
        node, *parts = out, *key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = lookup(params, key)
    return out


def test_a_minimal_params_file_runs_in_both_front_ends_and_a_missing_tracked_key_is_named(tmp_path, tiny_params):
    """Every key a stage tracks is written out (DVC refuses a params file without one); all the
    others may be left to the schema's defaults."""
    import yaml

    from conftest import copy_repo
    from scratchlm import dag

    repo = copy_repo(tmp_path / "repo")
    keys = dag.tracked_keys(tiny_params)
    body = minimal(tiny_params, [k for k in keys if k not in ("data.datasets", "tasks", "pretrain.models")])
    (repo / "params.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    assert "seeds" in body["finetune"] and "methods" in body["finetune"] and "head" not in body["finetune"]
    plan = run(["snakemake", "-n"], repo)
    assert "finetune" in plan.stdout
    status = run(["dvc", "status"], repo)
    assert "missing" not in (status.stdout + status.stderr).lower().replace("deleted", "")
    del body["finetune"]["overrides"]
    (repo / "params.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    proc = run(["snakemake", "-n"], repo, check=False)
    assert proc.returncode != 0
    assert ("params.yaml: finetune.overrides is missing; DVC tracks it as a stage's param and refuses a params file "
            "without it: add it (its default: finetune.overrides: {})") in proc.stdout + proc.stderr
