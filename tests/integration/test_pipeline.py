"""The real `snakemake` and the real `dvc` on the tiny preset, in a temporary copy of the
repository: a full run, a no-op rerun, an experiment that changes a fine-tuning knob, the
sync after DVC-side work, and the one-line errors. Marked slow: a few minutes in all."""

import json
import re

import pytest

from conftest import copy_repo, git_commit, run

pytestmark = pytest.mark.slow

UPSTREAM = ("data@", "tokenizer", "tokenize@", "pack", "pretrain@")


def said(proc) -> str:
    return proc.stdout + proc.stderr


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("tiny") / "repo")
    run(["scratchlm", "preset", "tiny"], repo)
    git_commit(repo, "tiny preset")
    run(["snakemake", "--cores", "2"], repo)
    return repo


def test_snakemake_runs_every_stage_and_records_them_in_dvc_lock(tiny_repo):
    assert (tiny_repo / "results/report.md").exists()
    for method in ("full", "scratch"):
        m = json.loads((tiny_repo / f"results/metrics/sentiment/gru/{method}.json").read_text())
        assert 0.0 <= m["accuracy"] <= 1.0
    lock = (tiny_repo / "dvc.lock").read_text()
    for stage in ("data@sentiment", "tokenizer", "tokenize@sentiment", "pack", "pretrain@gru",
                  "finetune@sentiment-gru-full", "evaluate@sentiment-gru-scratch", "report"):
        assert f"  {stage}:\n" in lock


def test_second_run_does_nothing_and_dvc_agrees(tiny_repo):
    assert "Nothing to be done" in said(run(["snakemake", "--cores", "2"], tiny_repo))
    assert "Data and pipelines are up to date" in said(run(["dvc", "status"], tiny_repo))
    assert ran_stages(said(run(["dvc", "repro"], tiny_repo))) == set()


def test_snakemake_config_override_is_refused(tiny_repo):
    proc = run(["snakemake", "-n", "--config", "seed=1"], tiny_repo, check=False)
    assert proc.returncode != 0
    assert "overrides are refused" in said(proc)
    assert "dvc exp run -S" in said(proc)


def test_bad_param_stops_both_front_ends_with_one_line(tiny_repo):
    params = tiny_repo / "params.yaml"
    good = params.read_text()
    params.write_text(good.replace("device: auto", "device: gpu"))
    try:
        proc = run(["snakemake", "-n"], tiny_repo, check=False)
        assert proc.returncode != 0
        assert "params.yaml: device = 'gpu' is not allowed (allowed: auto, cpu, cuda)" in said(proc)
        proc = run(["python", "-m", "scratchlm", "report"], tiny_repo, check=False)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "device = 'gpu'" in proc.stderr
    finally:
        params.write_text(good)


def test_exp_run_of_a_finetune_knob_reruns_only_downstream_stages(tiny_repo):
    git_commit(tiny_repo, "tiny run")
    out = said(run(["dvc", "exp", "run", "-S", "finetune.training.lr=0.001"], tiny_repo))
    stages = ran_stages(out)
    assert {"finetune@sentiment-gru-full", "finetune@sentiment-gru-scratch"} <= stages
    assert not [s for s in stages if s.startswith(UPSTREAM)], stages
    assert stages <= {s for s in stages if s.startswith(("finetune@", "evaluate@", "report"))}

    shown = json.loads(run(["dvc", "exp", "show", "--json"], tiny_repo).stdout)
    exps = [e for row in shown for e in (row.get("experiments") or [])]
    assert exps, "dvc exp show lists no experiment"
    data = exps[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["finetune"]["training"]["lr"] == 0.001
    metrics = data["metrics"]["results/metrics/sentiment/gru/full.json"]["data"]
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_sync_makes_snakemake_agree_after_dvc_work(tiny_repo):
    run(["scratchlm", "sync"], tiny_repo)
    assert "Nothing to be done" in said(run(["snakemake", "-n"], tiny_repo))


def test_dvc_repro_from_scratch_leaves_nothing_for_snakemake(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    run(["scratchlm", "preset", "tiny"], repo)
    git_commit(repo, "tiny preset")
    assert "report" in ran_stages(said(run(["dvc", "repro"], repo)))
    assert "Nothing to be done" in said(run(["snakemake", "-n"], repo))
