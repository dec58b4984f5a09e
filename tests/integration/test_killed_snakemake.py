"""SIGKILL of Snakemake itself mid-run (a login session that dies under a long run): one
documented command, `scratchlm resume`, ends the orphaned jobs, records the finished ones in
dvc.lock and finishes the run; both front ends then agree, and every metric equals an
uninterrupted run's (the one the slow tests share). Marked slow: a run of a small DAG."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import env, run
from scratchlm import dag, params
from scratchlm.atomic import job_lock, lock_holder

pytestmark = pytest.mark.slow


def test_a_killed_snakemake_resumes_with_one_command_to_the_same_results(killed_run, tiny_run):
    _, whole = tiny_run  # the metrics of an uninterrupted run of the bigger DAG
    killed = killed_run.repo
    assert killed_run.orphans, "no job was running when Snakemake was killed"
    assert "pretrain@gru-42" in killed_run.status_after_kill  # finished, yet not in dvc.lock
    # an orphan may finish on its own between the kill and the resume: at most those running at the kill
    ended = re.search(r"resume: ended (\d+) job", killed_run.resumed)
    assert ended is None or 1 <= int(ended.group(1)) <= killed_run.orphans, killed_run.resumed
    assert "resume: recorded" in killed_run.resumed
    assert not [lock for lock in (killed / "checkpoints/.jobs").glob("*.lock") if lock_holder(lock)]
    assert "Data and pipelines are up to date" in run(["dvc", "status"], killed).stdout
    assert "Nothing to be done" in run(["snakemake", "-n"], killed).stdout + run(["snakemake", "-n"], killed).stderr
    # the smaller DAG's runs are the bigger one's too, and their metrics are the same to the byte
    declared = params.load(killed / "params.yaml")
    made = {Path(o) for job in dag.jobs(declared, "evaluate") for o in job.outputs(declared)} & set(whole)
    assert Path("results/metrics/sentiment/gru/full.json") in made
    assert {m: (killed / m).read_text() for m in made} == {m: whole[m] for m in made}


def test_a_second_run_of_a_running_job_waits_for_it(tmp_path, monkeypatch):
    """An orphan still writing while a plain rerun starts the same job: the second waits for the
    first to end instead of racing it over the same checkpoints and outputs."""
    code = ("import sys, time\nfrom scratchlm.atomic import job_lock\n"
            "with job_lock('pack'):\n    print('held', flush=True)\n    time.sleep(3)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env(), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    monkeypatch.chdir(tmp_path)
    start = time.time()
    with job_lock("pack"):
        waited = time.time() - start
    holder.wait()
    assert waited > 1.5


def test_ctrl_c_then_the_same_command_finishes_the_run(tmp_path):
    """Ctrl-C (SIGINT) mid-way through a training job, then the same `snakemake` command again:
    it reruns the job it left incomplete (profiles/default: rerun-incomplete) and ends with both
    front ends up to date, where Snakemake used to refuse with IncompleteFilesException."""
    import signal

    from conftest import HUNG_AFTER_S, tiny_copy

    repo = tiny_copy(tmp_path / "repo", smaller=True)
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(["snakemake", "--cores", "1"], cwd=repo, env=env(), stdout=log, stderr=log)
        marker = repo / "checkpoints/pretrain/gru/seed42/fingerprint.json"
        deadline = time.time() + HUNG_AFTER_S
        while not marker.exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=HUNG_AFTER_S) != 0
    again = run(["snakemake", "--cores", "1"], repo)
    assert "IncompleteFilesException" not in again.stdout + again.stderr
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo).stdout
