"""`scratchlm preset NAME`: merge workflow/presets/NAME.yaml into params.yaml, keeping its comments.

Presets edit params.yaml itself rather than being passed as a Snakemake `--configfile`, so
Snakemake and DVC (dvc.lock, `dvc exp run`) see the same values. `git checkout params.yaml`
returns to the committed default.
"""

from __future__ import annotations

import copy
import io
import re
import sys
from pathlib import Path

import yaml

from . import dag
from .atomic import write_text
from .errors import ScratchError, first_line
from .params import SCHEMA_FILE, read_yaml, validate
from .schema import Loader, parse_yaml

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
                _set(target, key, _empty_like(target[key]))
        else:
            _set(target, key, copy.deepcopy(value))  # a value named twice (a YAML alias) is written twice


def _set(target, key, value) -> None:
    """`target[key] = value`, and in a ruamel document (comments kept) without the layout of the block
    collection it replaces: ruamel keeps the comments between a key and its block value's first entry
    (a list, most often empty) and writes them after whatever replaces it, which after a flow value
    leaves the next block sequence's first `-` on its key's line (`methods: -`, not valid YAML)."""
    from ruamel.yaml.comments import CommentedMap

    if isinstance(target, CommentedMap):
        value = _styled(target.get(key), value)
        slots = target.ca.items.get(key)
        if slots and len(slots) > 3 and isinstance(slots[3], list) and not _is_block(value):
            slots[3] = None  # those comments described the replaced entries
    target[key] = value


def _styled(old, value):
    """A list written as the list it replaces was (`[a, b]` stays on its line) and an empty one inline."""
    from ruamel.yaml.comments import CommentedSeq

    if not isinstance(value, list) or (value and not _is_flow(old)):
        return value
    seq = CommentedSeq(value)
    seq.fa.set_flow_style()
    return seq


def _is_flow(node) -> bool:
    return hasattr(node, "fa") and bool(node.fa.flow_style())


def _is_block(value) -> bool:
    return isinstance(value, (list, dict)) and bool(value) and not _is_flow(value)


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
    preset = presets_dir() / f"{name}.yaml"
    if not preset.exists():
        raise ScratchError(f"preset {name!r} not found in {presets_dir()} (available: {', '.join(available())})")
    overlay = read_yaml(preset) or {}
    overlay.setdefault("report", {})["preset"] = name  # the report names the preset it was made with
    path = Path(params_file)
    before = validate(read_yaml(path), params_file)
    merged = read_yaml(path)
    merge(merged, copy.deepcopy(overlay))
    after = validate(copy.deepcopy(merged), f"{params_file} with preset {name}")  # fills defaults: a copy
    write_text(path, checked_text(path, overlay, merged, f"preset {name}"))
    print(f"preset: merged {preset.name} into {params_file}", flush=True)
    warning = committed_results_warning(before, after)
    if warning:
        print(warning, file=sys.stderr)


def checked_text(path: Path, overlay: dict, merged: dict, what: str) -> str:
    """The text to write to `path`: `overlay` merged into it keeping its comments, else a plain YAML
    dump (said in one line), whichever our own reader reads back as exactly `merged`, the params that
    were validated. A file that reads otherwise, or not at all, is never written."""
    try:
        text = _round_trip(path.read_text(encoding="utf-8"), overlay)
        problem = _mismatch(text, merged)
    except Exception as e:  # whatever stops the comment-keeping path, the plain dump may still do
        problem = f"ruamel failed: {type(e).__name__}: {first_line(e)}"
    if problem is None:
        return text
    plain = _plain_dump(merged)
    fallback = _mismatch(plain, merged)
    if fallback is not None:
        raise ScratchError(f"{path}: {what} not applied, {path} is unchanged: neither ruamel's round-trip "
                           f"({problem}) nor a plain YAML dump ({fallback}) reads back as the merged params; "
                           f"set the preset's values in {path} by hand")
    print(f"preset: warning: {path}'s comments could not be kept (ruamel's round-trip did not reproduce the "
          f"merged values: {problem}); wrote a plain YAML dump", file=sys.stderr, flush=True)
    return plain


def _round_trip(text: str, overlay: dict) -> str:
    from ruamel.yaml import YAML

    rt = YAML()  # round-trip: comments and key order of params.yaml survive
    rt.width = 120  # the project's line length: at ruamel's 80, longer flow mappings would be wrapped
    doc = rt.load(text)
    merge(doc, copy.deepcopy(overlay))
    buf = io.StringIO()
    rt.dump(doc, buf)
    return buf.getvalue()


def _plain_dump(params: dict) -> str:
    """Block style, quoting each string our reader would take for another type (`3e-4`, a float to it)."""
    class Dumper(yaml.SafeDumper):
        yaml_implicit_resolvers = Loader.yaml_implicit_resolvers

    return yaml.dump(params, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)


def _mismatch(text: str, expected) -> str | None:
    """None when `text` reads back, as `scratchlm check` reads params.yaml, as `expected`; else what differs."""
    try:
        got = parse_yaml(text, "")
    except ScratchError as e:  # ":LINE: not valid YAML (...)"
        return re.sub(r"^:(\d+)", r"line \1", str(e)).lstrip(": ")
    where = _first_difference(got, expected)
    return None if where is None else f"reads back differently at {where or 'the top level'}"


def _first_difference(got, expected, path: str = "") -> str | None:
    """The dotted key of the first value that differs, types included (`1` is not `true` or `1.0`)."""
    if type(got) is not type(expected):
        return path
    if isinstance(got, dict):
        for key in {**expected, **got}:
            inner = f"{path}.{key}" if path else str(key)
            if key not in got or key not in expected:
                return inner
            where = _first_difference(got[key], expected[key], inner)
            if where is not None:
                return where
        return None
    if isinstance(got, list):
        if len(got) != len(expected):
            return path
        for i, (g, e) in enumerate(zip(got, expected)):
            where = _first_difference(g, e, f"{path}[{i}]")
            if where is not None:
                return where
        return None
    return None if got == expected else path


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
