"""The SLURM profile (workflow/profiles/slurm) parses, plans the whole DAG without a cluster,
and its resources reach the jobs: in the dry-run plan, and in the sbatch calls the executor
plugin makes (a fake `sbatch` records them and refuses the submission)."""

import os
import re
import subprocess
import time
from pathlib import Path
from unittest import mock

import pytest
import yaml
import yte

from conftest import HUNG_AFTER_S, ROOT, copy_repo, env

PROFILE = "workflow/profiles/slurm"
TRAINING = ("pretrain", "adapt", "finetune")
STAGES = {"data", "tokenizer", "encode", "pack", "pretrain", "adapt", "settings", "finetune", "evaluate", "report"}
SLURM_VARS = ("SCRATCHLM_SLURM_PARTITION", "SCRATCHLM_SLURM_GPU_PARTITION", "SCRATCHLM_SLURM_ACCOUNT")


def snakemake(repo: Path, *args: str, path_prefix: str = "", **variables: str) -> subprocess.CompletedProcess:
    # each job's block of resources, as Snakemake prints it without the rules' one-line messages
    e = {**{k: v for k, v in env().items() if k not in SLURM_VARS}, "SCRATCHLM_JOB_BLOCKS": "1"}
    e.update(variables)
    if path_prefix:
        e["PATH"] = f"{path_prefix}{os.pathsep}{e['PATH']}"
    return subprocess.run(["snakemake", "--profile", PROFILE, *args], cwd=repo, env=e,
                          capture_output=True, text=True, timeout=HUNG_AFTER_S)


def profile(**variables: str) -> dict:
    """The profile as Snakemake reads it (YTE-rendered), under the given environment."""
    with mock.patch.dict(os.environ, variables):
        for name in set(SLURM_VARS) - set(variables):
            os.environ.pop(name, None)
        with open(ROOT / PROFILE / "config.yaml") as f:
            return yte.process_yaml(f, require_use_yte=True)


def expected(conf: dict, rule: str, name: str, attempt: int = 1):
    """A rule's resource as the profile sets it (set-resources over default-resources)."""
    value = conf["set-resources"].get(rule, {}).get(name, conf["default-resources"].get(name))
    return eval(value, {"attempt": attempt}) if isinstance(value, str) and "attempt" in value else value


def planned_jobs(text: str) -> list[tuple[str, dict, dict]]:
    """(rule, fields, resources) of every job block in Snakemake's dry-run output."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", text)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
        resources = dict(r.split("=", 1) for r in fields.get("resources", "").split(", ") if "=" in r)
        jobs.append((rule, fields, resources))
    return jobs


@pytest.fixture(scope="module")
def slurm_repo(tmp_path_factory) -> Path:
    """A copy of the repository with an LSTM beside the demo's GRU (two models to pretrain)."""
    repo = copy_repo(tmp_path_factory.mktemp("slurm") / "repo")
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["pretrain"]["models"]["lstm"] = {"arch": "recurrent", "cell": "lstm"}
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return repo


def test_profile_plans_every_stage_with_its_resources_without_a_cluster(slurm_repo):
    """`snakemake --profile workflow/profiles/slurm -n` with no SLURM command on PATH and no
    SCRATCHLM_SLURM_* set: the executor plugin loads, the full DAG is planned, and each job
    carries the profile's resources (GPU for the training rules only)."""
    proc = snakemake(slurm_repo, "-n", "--cores", "8")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    # the workflow profile profiles/default (cores, checksums) is read too
    assert re.search(rf"Using profiles? {PROFILE} and workflow specific profile profiles/default", out), out[:2000]
    jobs = planned_jobs(out)
    assert STAGES <= {rule for rule, _, _ in jobs}
    conf = profile()
    for rule, fields, res in jobs:
        if rule == "all":
            continue
        threads = int(fields.get("threads", 1))
        assert int(res["mem_mb"]) == expected(conf, rule, "mem_mb"), (rule, res)
        assert int(res["runtime"]) == expected(conf, rule, "runtime"), (rule, res)
        assert int(res["cpus_per_task"]) == threads, (rule, res)  # --cpus-per-task = OMP_NUM_THREADS
        assert "slurm_partition" not in res and "slurm_account" not in res, (rule, res)  # SLURM decides
        if rule in TRAINING:
            assert res["gpu"] == "1" and threads == conf["set-threads"][rule] == 8, (rule, res, threads)
            assert int(res["mem_mb"]) >= 16000 and int(res["runtime"]) >= 240, (rule, res)
        else:
            assert int(res.get("gpu", 0)) == 0, (rule, res)


def test_partitions_and_account_come_from_the_environment(slurm_repo):
    proc = snakemake(slurm_repo, "-n", SCRATCHLM_SLURM_PARTITION="short", SCRATCHLM_SLURM_GPU_PARTITION="gpu",
                     SCRATCHLM_SLURM_ACCOUNT="proj42")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    partitions = {}
    for rule, _, res in planned_jobs(proc.stdout + proc.stderr):
        if rule != "all":
            assert res["slurm_account"] == "proj42", (rule, res)
            partitions.setdefault(res["slurm_partition"], set()).add(rule)
    assert partitions == {"gpu": set(TRAINING), "short": STAGES - set(TRAINING)}
    # one partition for everything when no GPU partition is given
    conf = profile(SCRATCHLM_SLURM_PARTITION="short")
    assert conf["default-resources"]["slurm_partition"] == "short"
    assert {conf["set-resources"][rule]["slurm_partition"] for rule in TRAINING} == {"short"}


FAKE_SBATCH = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_SLURM_LOG"
echo "sbatch: error: fake SLURM (tests)" >&2
exit 1
"""
FAKE_TOOL = """#!/bin/sh
[ "$(basename "$0")" = sacctmgr ] && echo proj42
exit 0
"""


def fake_upstream(repo: Path) -> None:
    """Outputs of the jobs before the ones the test submits (as Snakemake's plan names them),
    each stage's newer than the one before, so that Snakemake plans only the targeted jobs."""
    plan = subprocess.run(["snakemake", "-n", "--forceall", "models/adapt/sentiment/gru/seed42", "data/raw/ner",
                           "results/settings/finetune/gru.json"],
                          cwd=repo, env={**env(), "SCRATCHLM_JOB_BLOCKS": "1"}, capture_output=True, text=True,
                          timeout=HUNG_AFTER_S)
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    level = {"data": 0, "tokenizer": 1, "encode": 2, "pack": 2, "pretrain": 3, "adapt": 4, "settings": 4}
    base = time.time() + 5
    for rule, fields, _ in sorted(planned_jobs(plan.stdout), key=lambda job: level.get(job[0], 9)):
        if rule == "all":
            continue
        for p in (repo / o for o in fields["output"].split(", ")):
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists():
                p.touch() if p.suffix else p.mkdir()  # directory() outputs have no suffix
            os.utime(p, (base + level[rule], base + level[rule]))


def test_plugin_submits_the_profile_resources_to_sbatch(slurm_repo, tmp_path):
    """A real (non-dry) run against a fake SLURM: the plugin's sbatch calls carry the partition,
    account, memory, time, CPUs and GPUs the profile sets; the retry doubles the memory."""
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    (fakebin / "sbatch").write_text(FAKE_SBATCH)
    for tool in ("sinfo", "sacct", "squeue", "scontrol", "sacctmgr", "sshare"):
        (fakebin / tool).write_text(FAKE_TOOL)
    for f in fakebin.iterdir():
        f.chmod(0o755)
    log = tmp_path / "sbatch.log"
    fake_upstream(slurm_repo)
    targets = ["models/pretrain/lstm/seed42", "models/finetune/sentiment/gru/full", "data/encoded/ner",
               "models/adapt/ner/lstm/seed42"]
    proc = snakemake(slurm_repo, "--cores", "8", "--slurm-init-seconds-before-status-checks", "1", *targets,
                     path_prefix=str(fakebin), FAKE_SLURM_LOG=str(log), SCRATCHLM_SLURM_PARTITION="short",
                     SCRATCHLM_SLURM_GPU_PARTITION="gpu", SCRATCHLM_SLURM_ACCOUNT="proj42")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "fake SLURM (tests)" in out, out[-3000:]
    calls = {}
    for line in log.read_text().splitlines():
        rule = re.search(r"--comment rule_(\w+?)_wildcards", line).group(1)
        calls.setdefault(rule, []).append(line.split(" --wrap=")[0])
    assert set(calls) == {"pretrain", "finetune", "encode"}, calls  # adapt@ner-lstm-42 waits for pretrain@lstm-42
    conf = profile()
    for rule, submitted in calls.items():
        assert len(submitted) == 1 + conf["retries"], (rule, submitted)  # the first try and the retry
        for attempt, call in enumerate(submitted, start=1):
            flags = call.split()
            assert f"--mem {expected(conf, rule, 'mem_mb', attempt)}" in call, (rule, call)
            assert f"-t {expected(conf, rule, 'runtime', attempt)}" in call, (rule, call)
            assert ("-A", "proj42") == tuple(flags[flags.index("-A"):][:2]), call
            if rule in TRAINING:
                assert "--gpus=1" in flags and "--cpus-per-task=8" in flags, call
                assert ("-p", "gpu") == tuple(flags[flags.index("-p"):][:2]), call
            else:
                assert not any(f.startswith(("--gpus", "--gres")) for f in flags), call
                assert "--cpus-per-task=1" in flags, call
                assert ("-p", "short") == tuple(flags[flags.index("-p"):][:2]), call
    assert "--mem 64000" in calls["pretrain"][1]  # memory doubles on the retry
