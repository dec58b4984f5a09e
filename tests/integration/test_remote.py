"""Results shared through a DVC remote: a run on the tiny preset is pushed to a local-folder
remote, the repository is cloned afresh, `dvc pull` fetches what the run made, and neither
`dvc repro` nor (after `scratchlm sync`) Snakemake recomputes anything. Marked slow: the run is
the killed-Snakemake tests' (a smaller DAG than the tiny preset's, killed and resumed), so what a
resumed run recorded is what travels."""

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from conftest import git_commit, run

pytestmark = pytest.mark.slow
MODEL = "models/pretrain/gru/seed42/model.safetensors"
METRICS = "results/metrics/sentiment/gru/full.json"


def said(proc) -> str:
    return proc.stdout + proc.stderr


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def cached_files(repo) -> list[str]:
    """Every file of the outputs DVC keeps in its cache (directories expanded), workspace paths."""
    from dvc.repo import Repo

    files = []
    with Repo(str(repo)) as r:
        for stage in r.index.stages:
            for out in stage.outs:
                path = Path(out.fs_path)
                if out.use_cache:  # Snakemake's .snakemake_timestamp markers are in .dvcignore
                    files += ([str(p.relative_to(repo)) for p in path.rglob("*")
                               if p.is_file() and p.name != ".snakemake_timestamp"]
                              if path.is_dir() else [str(path.relative_to(repo))])
    return sorted(files)


@pytest.fixture(scope="module")
def shared(killed_run, tmp_path_factory):
    """(repo, clone, remote, pull output): the run and push in `repo`, the pull in `clone`."""
    base = tmp_path_factory.mktemp("remote")
    repo = killed_run.repo  # finished by `scratchlm resume`, which records the run in dvc.lock and the cache
    remote = base / "remote"
    run(["dvc", "remote", "add", "-d", "local", str(remote)], repo)
    run(["dvc", "push"], repo)
    git_commit(repo, "tiny run; DVC remote")

    clone = base / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert not (clone / "models").exists() and not (clone / ".dvc/cache").exists()
    pulled = run(["dvc", "pull"], clone)
    return repo, clone, remote, pulled


def test_push_fills_the_local_remote(shared):
    repo, _, remote, _ = shared
    assert "remote \"local\"" in (repo / ".dvc/config").read_text()
    assert [p for p in remote.rglob("*") if p.is_file()]
    assert "Cache and remote 'local' are in sync" in said(run(["dvc", "status", "--cloud"], repo))


def test_clone_pulls_every_output_with_the_same_content(shared):
    repo, clone, _, pulled = shared
    files = cached_files(repo)
    assert MODEL in files and any(f.startswith("data/encoded/sentiment/") for f in files)
    assert re.search(r"\b\d+ files? (fetched|added)", said(pulled)), said(pulled)
    for name in files:
        assert (clone / name).is_file(), name
        assert md5(clone / name) == md5(repo / name), name
    assert md5(clone / METRICS) == md5(repo / METRICS)  # metrics travel through git (cache: false)


def test_dvc_repro_in_the_clone_runs_nothing(shared):
    _, clone, _, _ = shared
    assert "Data and pipelines are up to date" in said(run(["dvc", "status"], clone))
    out = said(run(["dvc", "repro"], clone))
    assert not re.findall(r"Running stage '([^']+)'", out), out
    assert "Data and pipelines are up to date" in out, out


def test_snakemake_agrees_after_sync(shared):
    """A clone's files have checkout-time mtimes, which Snakemake would take for changes (it
    plans the whole DAG); `scratchlm sync` touches them in DAG order once DVC vouches for them."""
    _, clone, _, _ = shared
    run(["scratchlm", "sync"], clone)
    assert "Nothing to be done" in said(run(["snakemake", "-n"], clone))
