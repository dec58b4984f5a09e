"""params.yaml: load it, validate it (the schema with defaults filled, then the cross-checks),
and check that it holds every key a stage tracks.

Every stage calls `load()` before any work, so a bad value stops at once with one line naming
the key, the value and what is allowed. schema.py owns the schema and its messages, checks.py the
cross-checks, training_config.py the merged training settings."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

from . import checks, dag, schema
from .errors import ScratchError
from .paths import EXTERNAL
from .schema import SCHEMA_FILE, did_you_mean, read_yaml

PARAMS_FILE = Path("params.yaml")

__all__ = ["PARAMS_FILE", "SCHEMA_FILE", "did_you_mean", "read_yaml", "validate", "load", "local_files",
           "check_local_files", "digest"]


def validate(params: dict, source: str = str(PARAMS_FILE)) -> dict:
    """Validate a params dict in place, filling defaults; raise ScratchError with one line."""
    schema.check(params, source)
    checks.check(params, source)
    return params


def load(path: Path | str = PARAMS_FILE) -> dict:
    """params.yaml validated, defaults filled, and holding every key the stages track."""
    path = Path(path)
    raw = read_yaml(path)
    schema.check_defaults_file()
    params = validate(copy.deepcopy(raw), str(path))
    _check_tracked(raw, params, str(path))
    return params


def _check_tracked(raw: dict, params: dict, source: str) -> None:
    """DVC reads each stage's params keys from the file itself and refuses a file that lacks one,
    defaults or not; so every tracked key must be written out, and this says so before any work."""
    for key in dag.tracked_keys(params):
        node = raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                default = json.dumps(dag.lookup(params, key), default=str)
                raise ScratchError(f"{source}: {key} is missing; DVC tracks it as a stage's param and refuses a "
                                   f"params file without it: add it (its default: {key}: {default})")
            node = node[part]


def local_files(spec: dict, key: str) -> list[tuple[str, str]]:
    """(params key, path) of every file a local dataset reads, a mix's parts' included."""
    if spec["source"] == "mix":
        return [f for part, sub in spec["parts"].items() for f in local_files(sub, f"{key}.parts.{part}")]
    return [(f"{key}.files.{split}", path) for split, path in spec.get("files", {}).items() if path]


def check_local_files(params: dict) -> None:
    """Every file the declared local datasets read is there. Snakemake needs this before planning:
    it skips a job whose input is missing and, when that job's old output (a committed report) is
    on disk, plans nothing at all instead of saying which file is missing."""
    for name, spec in params["data"]["datasets"].items():
        for key, path in local_files(spec, f"data.datasets.{name}"):
            if not Path(path).is_file():
                raise ScratchError(f"params.yaml: {key} = {path!r}: file not found; put it there (the public "
                                   f"benchmarks' layout: {EXTERNAL}/README.md), or correct the path in params.yaml")


def digest(params: dict) -> str:
    """A short stable hash of the validated params, shown in the report."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
