"""Shared fixtures: the repository, the default and tiny params, a throw-away copy of the
repository, and the pipeline runs the slow tests share (`tiny_run`, `killed_run`).

Hermetic: the tests build their params from the committed default (params.yaml at git HEAD,
DEFAULT_PARAMS), never from the working tree's, which `scratchlm preset` rewrites. Quick tests
train nothing: one that reaches Trainer.train fails, saying to mark it slow."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent
# a bound for a hung process only, never a speed a test asserts: the slowest command (the tiny preset's
# whole DAG) takes minutes on 2 cores, and a runner slowed several times by other work must still pass
HUNG_AFTER_S = 3600


def _committed_params() -> str:
    """params.yaml as committed (the embedded default), or the working tree's outside a git checkout."""
    proc = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else (ROOT / "params.yaml").read_text(encoding="utf-8")


DEFAULT_PARAMS_TEXT = _committed_params()
DEFAULT_PARAMS = Path(tempfile.mkdtemp(prefix="scratchlm-default-")) / "params.yaml"
DEFAULT_PARAMS.write_text(DEFAULT_PARAMS_TEXT, encoding="utf-8")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """`make test-quick` must stay quick: a test not marked slow that trains a model (in its body or in
    a fixture it sets up) fails, saying to mark it slow. In this process only: a test that trains in a
    subprocess is marked by hand."""
    if item.get_closest_marker("slow") is not None:
        yield
        return
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError(f"{item.nodeid} trains a model: mark it @pytest.mark.slow "
                             f"(make test-quick runs no training)")

    original, transformers.Trainer.train = transformers.Trainer.train, refuse
    try:
        yield
    finally:
        transformers.Trainer.train = original


@pytest.fixture(scope="session")
def default_params() -> dict:
    from scratchlm import params

    return params.load(DEFAULT_PARAMS)


@pytest.fixture(scope="session")
def tiny_params() -> dict:
    """The default params with the tiny preset merged in, validated (defaults filled)."""
    from scratchlm import params, presets

    raw = params.read_yaml(DEFAULT_PARAMS)
    presets.merge(raw, params.read_yaml(presets.PRESETS_DIR / "tiny.yaml"))
    return params.validate(raw)


def spec_for(**fields) -> dict:
    """A dataset spec validated through the schema, so defaults are filled as in params.yaml."""
    from scratchlm import params

    p = params.read_yaml(DEFAULT_PARAMS)
    p["data"]["datasets"]["x"] = fields
    return params.validate(p)["data"]["datasets"]["x"]


@pytest.fixture
def params_copy(tiny_params) -> dict:
    return copy.deepcopy(tiny_params)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Stages read and write paths relative to the working directory: run them in a temp one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def copy_repo(dest: Path) -> Path:
    """The files git would commit (tracked and untracked-but-not-ignored), as a fresh git repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / "params.yaml").write_text(DEFAULT_PARAMS_TEXT, encoding="utf-8")  # not a preset the tree may hold
    run(["git", "init", "-q"], dest)
    # DVC experiments commit through their own git library, which reads the repo's config
    run(["git", "config", "user.name", "scratchlm tests"], dest)
    run(["git", "config", "user.email", "tests@scratchlm.invalid"], dest)
    git_commit(dest, "copy of the repository")
    return dest


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = HUNG_AFTER_S) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def kill_at(proc: subprocess.Popen, marker: Path, timeout: float = HUNG_AFTER_S) -> None:
    """SIGKILL a training run as soon as `marker` (a checkpoint's last file) exists."""
    import signal
    import time

    deadline = time.time() + timeout
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"ended before it could be killed:\n{proc.communicate()[0][-3000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists(), f"{marker} was never written: killed at the {timeout} s bound for a hung run"


def git_commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", message], repo)


@pytest.fixture
def repo(tmp_path) -> Path:
    return copy_repo(tmp_path / "repo")


# one task, one model, two runs: for the slow tests whose subject does not depend on the DAG's size
SMALLER = ("data: {datasets: {ner: null}}\ntasks: {ner: null}\npretrain: {models: {bert: null}}\n"
           "adapt: {ablation: {models: []}}\n"
           "finetune: {lora: {models: []}, overrides: {bert: null}, prompting: {tasks: []}}\n")


def tiny_copy(dest: Path, smaller: bool = False) -> Path:
    """A copy of the repository with the tiny preset (and SMALLER on top) applied and committed."""
    repo = copy_repo(dest)
    run(["scratchlm", "preset", "tiny"], repo)
    if smaller:
        (repo / "workflow/presets/smaller.yaml").write_text(SMALLER)
        run(["scratchlm", "preset", "smaller"], repo)
    git_commit(repo, "tiny preset" + (", one task and one model" if smaller else ""))
    return repo


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, dict[Path, str]]:
    """One `snakemake` run of the tiny preset in a copy of the repository, shared by the slow tests
    that need a finished run (it takes minutes), and its metric files as they were when it ended:
    later tests change that repository (an experiment is applied there)."""
    repo = tiny_copy(tmp_path_factory.mktemp("tiny") / "repo")
    proc = run(["snakemake", "--cores", "2"], repo)
    (repo.parent / "console.txt").write_text(proc.stdout + proc.stderr)  # what the user saw
    metrics = {p.relative_to(repo): p.read_text() for p in sorted((repo / "results/metrics").rglob("*.json"))}
    return repo, metrics


@dataclass
class KilledRun:
    """A `snakemake` run on the SMALLER DAG, SIGKILLed mid-way through a fine-tuning run and
    finished by `scratchlm resume`; what was seen between the kill and the resume."""
    repo: Path
    orphans: int           # jobs still running when Snakemake died
    status_after_kill: str
    resumed: str           # `scratchlm resume`'s output


@pytest.fixture(scope="session")
def killed_run(tmp_path_factory) -> KilledRun:
    """Shared by the killed-Snakemake tests and the DVC-remote tests (a resumed run is a finished
    run: what it pushes must pull into a clone that recomputes nothing)."""
    from scratchlm.atomic import lock_holder

    base = tmp_path_factory.mktemp("killed")
    repo = tiny_copy(base / "repo", smaller=True)
    # one core: a training job then gets the one thread it gets in the bigger DAG of `tiny_run`
    # (there two jobs share two cores), so their metrics can be compared to the byte
    with open(base / "snakemake.log", "w") as log:
        proc = subprocess.Popen(["snakemake", "--cores", "1"], cwd=repo, env=env(), stdout=log, stderr=log)
        # mid-way through a fine-tuning run (20 steps, a checkpoint every 10): jobs finished, one running
        kill_at(proc, repo / "checkpoints/finetune/sentiment/gru/full/seed42/checkpoint-10/trainer_state.json")
    orphans = len([lock for lock in (repo / "checkpoints/.jobs").glob("*.lock") if lock_holder(lock)])
    status = run(["dvc", "status"], repo).stdout
    return KilledRun(repo, orphans, status, run(["scratchlm", "resume", "--cores", "1"], repo).stdout)
