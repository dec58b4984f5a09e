"""What the measurements share: paths, the shape of a result, the environment of the
subprocesses they start, and a description of the machine and its software."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: snakemake, dvc and python of this environment
DEFAULT_DATA = ROOT.parent / "shared" / "data"


@dataclass
class Row:
    """One line of the Markdown table: our figure against a peer's, and the goal it is held to."""
    measurement: str
    ours: str
    peer: str
    ratio: float | None
    goal: str
    met: bool | None  # None: no goal, or nothing measured
    key: str | None = None  # the bench.json key this row reports


@dataclass
class Outcome:
    """A measurement's contribution to bench.json: top-level numbers (None when not measured,
    with the reason in `nulls`), the table rows and the detail behind them."""
    summary: dict = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    detail: dict = field(default_factory=dict)
    nulls: dict = field(default_factory=dict)


def at_least(value: float | None, goal: float) -> bool | None:
    return None if value is None else value >= goal


def at_most(value: float | None, goal: float) -> bool | None:
    return None if value is None else value <= goal


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    """A number for the table; an em dash when it was not measured."""
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{unit}"


def cores() -> int:
    """The cores this process may run on (what `--cores all` and torch's threads get)."""
    return len(os.sched_getaffinity(0))


def subprocess_env(**overrides: str | None) -> dict:
    """Our environment with the venv's bin first on PATH (as the Makefile does); an override of
    None removes the variable. Always passed explicitly: a child forked after the tokenizers
    library used its thread pool would otherwise inherit TOKENIZERS_PARALLELISM=false."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_json(args: list[str], env: dict, cwd: Path = ROOT) -> dict:
    """Run a worker (`python -m benchmarks.<module> ...`) whose last stdout line is JSON."""
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return round(kb / 2**20, 1)


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def machine() -> dict:
    """Where the numbers were taken: they mean little without it."""
    return {"cpu": _cpu_model(), "cores": cores(), "memory_gb": _memory_gb(),
            "platform": platform.platform(), "python": platform.python_version(),
            "git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain"))}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "datasets", "tokenizers", "snakemake", "dvc", "numpy", "pyarrow"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found
