"""`scratchlm preset NAME`: merge workflow/presets/NAME.yaml into params.yaml, keeping its comments.

Presets edit params.yaml itself rather than being passed as a Snakemake `--configfile`, so
Snakemake and DVC (dvc.lock, `dvc exp run`) see the same values. `git checkout params.yaml`
returns to the committed default.
"""

from __future__ import annotations

import copy
import io
import sys
from pathlib import Path

from . import dag
from .atomic import write_text
from .errors import ScratchError
from .params import SCHEMA_FILE, read_yaml, validate

PRESETS_DIR = SCHEMA_FILE.parents[1] / "presets"


def presets_dir() -> Path:
    """The repository's own presets (a user may add one), else those beside the package."""
    here = Path("workflow/presets")
    return here if here.is_dir() else PRESETS_DIR


def available() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def merge(target, overlay) -> None:
    """Deep-merge `overlay` into `target` in place: mappings merge, everything else replaces, and
    null removes a named entry that is a mapping (a dataset, task or model), so a preset can swap
    the demo's datasets for others; null over a plain value sets it to null."""
    for key, value in overlay.items():
        if value is None and isinstance(target.get(key), dict):
            del target[key]
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
            if not target[key]:
                target[key] = _empty_like(target[key])
        else:
            target[key] = copy.deepcopy(value)  # a value named twice (a YAML alias) is written twice


def _empty_like(mapping):
    """An empty mapping that ruamel writes inline (`key: {}`): an emptied block mapping would be
    written as `{}` on a line of its own below its key's comment, which is not valid YAML."""
    from ruamel.yaml.comments import CommentedMap

    if not isinstance(mapping, CommentedMap):
        return {}
    empty = CommentedMap()
    empty.fa.set_flow_style()
    return empty


def run(args) -> None:
    """`scratchlm preset NAME`."""
    apply(args.name, args.params)


def apply(name: str, params_file: str = "params.yaml") -> None:
    from ruamel.yaml import YAML

    preset = presets_dir() / f"{name}.yaml"
    if not preset.exists():
        raise ScratchError(f"preset {name!r} not found in {presets_dir()} (available: {', '.join(available())})")
    overlay = read_yaml(preset) or {}
    overlay.setdefault("report", {})["preset"] = name  # the report names the preset it was made with
    yaml = YAML()  # round-trip: comments and key order of params.yaml survive
    path = Path(params_file)
    doc = yaml.load(path.read_text(encoding="utf-8"))
    merge(doc, overlay)
    before = validate(read_yaml(path), params_file)
    plain = read_yaml(path)
    merge(plain, copy.deepcopy(overlay))
    validate(plain, f"{params_file} with preset {name}")
    buf = io.StringIO()
    yaml.dump(doc, buf)
    write_text(path, buf.getvalue())
    print(f"preset: merged {preset.name} into {params_file}", flush=True)
    warning = committed_results_warning(before, plain)
    if warning:
        print(warning, file=sys.stderr)


def committed_results_warning(before: dict, after: dict) -> str | None:
    """The results/ files (git-tracked) of the params a preset replaces: a run under the preset
    overwrites those it shares and leaves the others describing runs it does not declare. Said,
    not prevented: results/ is where both front ends and `dvc metrics diff` look, and git keeps
    the committed ones."""
    def results(p: dict) -> set[Path]:
        return {Path(out) for job in dag.jobs(p) for out in job.outputs(p) if out.startswith("results/")}

    old = {f for f in results(before) if f.exists()}
    if not old:
        return None
    stale = old - results(after)
    return (f"preset: warning: results/ holds {len(old)} result files of the params this preset replaced; a run "
            f"overwrites them, and {len(stale)} describe runs the preset does not declare (the report reads only "
            f"declared runs). `git checkout params.yaml dvc.lock results` restores the committed state")
