"""SIGKILL of Snakemake itself mid-run (a login session that dies under a long run): one
documented command, `scratchlm resume`, ends the orphaned jobs, records the finished ones in
dvc.lock and finishes the run; both front ends then agree, and every metric equals an
uninterrupted run's (the one the slow tests share). Marked slow: a tiny run."""

import re
import subprocess

import pytest

from conftest import copy_repo, env, git_commit, kill_at, run
from scratchlm.atomic import lock_holder

pytestmark = pytest.mark.slow


def tiny(root, name):
    repo = copy_repo(root / name)
    run(["scratchlm", "preset", "tiny"], repo)
    git_commit(repo, "tiny preset")
    return repo


def test_a_killed_snakemake_resumes_with_one_command_to_the_same_results(tmp_path, tiny_run):
    _, whole = tiny_run  # the metrics of an uninterrupted run
    killed = tiny(tmp_path, "killed")
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(["snakemake", "--cores", "2"], cwd=killed, env=env(), stdout=log, stderr=log)
        # mid-way through a fine-tuning run (20 steps, a checkpoint every 10): jobs finished, one running
        kill_at(proc, killed / "checkpoints/finetune/sentiment/gru/full/seed42/checkpoint-10/trainer_state.json")
    orphans = [lock for lock in (killed / "checkpoints/.jobs").glob("*.lock") if lock_holder(lock)]
    assert orphans, "no job was running when Snakemake was killed"
    assert "pretrain@gru" in run(["dvc", "status"], killed).stdout  # finished, yet not in dvc.lock

    out = run(["scratchlm", "resume", "--cores", "2"], killed)
    # an orphan may finish on its own between the kill and the resume: at most those running at the kill
    ended = re.search(r"resume: ended (\d+) job", out.stdout)
    assert ended is None or 1 <= int(ended.group(1)) <= len(orphans), out.stdout
    assert "resume: recorded" in out.stdout
    assert not [lock for lock in (killed / "checkpoints/.jobs").glob("*.lock") if lock_holder(lock)]
    assert "Data and pipelines are up to date" in run(["dvc", "status"], killed).stdout
    assert "Nothing to be done" in run(["snakemake", "-n"], killed).stdout + run(["snakemake", "-n"], killed).stderr
    assert whole and {m: (killed / m).read_text() for m in whole} == whole


def test_a_second_run_of_a_running_job_waits_for_it(tmp_path):
    """An orphan still writing while a plain rerun starts the same job: the second waits for the
    first to end instead of racing it over the same checkpoints and outputs."""
    import sys
    import time

    from scratchlm.atomic import job_lock

    code = ("import sys, time\nfrom scratchlm.atomic import job_lock\n"
            "with job_lock('pack'):\n    print('held', flush=True)\n    time.sleep(3)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env(), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    import os

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        start = time.time()
        with job_lock("pack"):
            waited = time.time() - start
    finally:
        os.chdir(here)
    holder.wait()
    assert waited > 1.5
