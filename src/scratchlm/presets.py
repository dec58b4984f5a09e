"""`scratchlm preset NAME`: merge workflow/presets/NAME.yaml into params.yaml, keeping its comments.
`--keep-data` keeps the params' own datasets and tasks and samples their data instead.

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


# The mappings whose entries are named (a null there removes an entry, and finds an absent one
# already removed); elsewhere a null is a value (`splits: {validation: null}`: carve one).
NAMED_ENTRIES = {("data", "datasets"), ("data", "datasets", "*", "parts"), ("tasks",), ("pretrain", "models")}


def _holds_named_entries(path: tuple) -> bool:
    return any(len(p) == len(path) and all(a in ("*", b) for a, b in zip(p, path)) for p in NAMED_ENTRIES)


def merge(target, overlay, path: tuple = ()) -> None:
    """Deep-merge `overlay` into `target` in place: mappings merge, everything else replaces, and
    null removes a named entry that is a mapping (a dataset, task or model), so a preset can swap
    the demo's datasets for others; a named entry already absent stays so (a preset applied
    twice). Null over any other key sets it to null."""
    for key, value in overlay.items():
        if value is None and (isinstance(target.get(key), dict) or
                              (key not in target and _holds_named_entries(path))):
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value, (*path, key))
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
    """`scratchlm preset NAME [--keep-data]`."""
    apply(args.name, args.params, keep_data=args.keep_data)


def apply(name: str, params_file: str = "params.yaml", keep_data: bool = False, file: Path | None = None) -> None:
    """Merge preset `name` into `params_file`. `keep_data`: keep the params' own datasets and tasks
    and shrink the data instead (see `keep_data_overlay`). `file`: the overlay's own path, for one
    that lives elsewhere than the presets (an experiment's, layered over a preset)."""
    preset = file or presets_dir() / f"{name}.yaml"
    if file is not None and not file.exists():
        raise ScratchError(f"overlay {name!r}: {file} not found")
    if not preset.exists():
        raise ScratchError(f"preset {name!r} not found in {presets_dir()} (available: {', '.join(available())})")
    overlay = read_yaml(preset) or {}
    label = f"{name} --keep-data" if keep_data else name
    path = Path(params_file)
    before = validate(read_yaml(path), params_file)
    if keep_data:
        overlay = keep_data_overlay(overlay, before)
    overlay.setdefault("report", {})["preset"] = label  # the report names the preset it was made with
    merged = read_yaml(path)
    merge(merged, copy.deepcopy(overlay))
    try:
        after = validate(copy.deepcopy(merged), f"{params_file} with preset {label}")  # fills defaults: a copy
    except ScratchError as e:
        misfits = [] if keep_data else own_data_misfits(overlay, before)
        if not misfits:
            raise
        raise ScratchError(f"{e}; the preset sizes the demo's synthetic datasets and tasks, and {params_file} has "
                           f"{', '.join(misfits)} as its own (not synthetic) or not at all: to keep your own datasets "
                           f"and tasks and shrink them by `sample:`, run `scratchlm preset {name} --keep-data`") from e
    write_text(path, checked_text(path, overlay, merged, f"preset {label}"))
    kept = (", keeping its datasets and tasks, each hub or local dataset sampled to at most "
            f"{'/'.join(map(str, OWN_DATA_SAMPLE.values()))} train/validation/test rows") if keep_data else ""
    print(f"preset: merged {preset.name} into {params_file}{kept}", flush=True)
    warning = committed_results_warning(before, after)
    if warning:
        print(warning, file=sys.stderr)


# `--keep-data`'s subset of each of the params' own (hub, local) datasets, per split: the tiny preset's
# sizes of the synthetic sentiment data, so a smoke run over real data stays about as small as the demo's
OWN_DATA_SAMPLE = {"train": 200, "validation": 50, "test": 50}
# the keys whose lists (or, for overrides, mappings) name models, and tasks (checks.py checks each)
MODEL_REFERENCES = ("adapt.ablation.models", "finetune.lora.models", "finetune.prompting.models",
                    "finetune.data_efficiency.models", "adapt.overrides", "finetune.overrides",
                    "finetune.prompting.overrides")
TASK_REFERENCES = ("finetune.prompting.tasks", "finetune.data_efficiency.tasks")


def keep_data_overlay(overlay: dict, params: dict) -> dict:
    """The preset `overlay` for `params` (validated) that keep their own datasets and tasks: without
    its `data` and `tasks` sections, which size the demo's synthetic datasets and its tasks; instead
    each dataset of `params` that is not synthetic (hub, local; each part of a mix) is sampled to at
    most OWN_DATA_SAMPLE (a smaller sample stays), and a synthetic one the preset names gets the
    preset's entry. Models and training merge as usual, except what cannot apply to these params: a
    model the preset only resizes (no `arch`) that they do not declare, the preset's mentions
    of models and tasks they do not declare, and ULMFiT's slanted triangular rates where a task of
    theirs sets its own schedule (the two contradict each other; theirs is kept)."""
    kept = {key: copy.deepcopy(value) for key, value in overlay.items() if key not in ("data", "tasks")}
    if any("scheduler" in (layer or {}) for task in params["tasks"].values()
           for layer in (task.get("training"), *(task.get("method_overrides") or {}).values())):
        lookup_in(kept, "finetune.ulmfit").pop("slanted_triangular", None)
    preset_datasets = lookup_in(overlay, "data.datasets")
    datasets = {}
    for name, spec in params["data"]["datasets"].items():
        if spec["source"] == "synthetic":
            if isinstance(preset_datasets.get(name), dict):
                datasets[name] = copy.deepcopy(preset_datasets[name])
        elif (shrunk := _sampled(spec)) is not None:
            datasets[name] = shrunk
    if datasets:
        kept["data"] = {"datasets": datasets}
    preset_models = lookup_in(kept, "pretrain.models")
    for name, spec in list(preset_models.items()):
        if name not in params["pretrain"]["models"] and isinstance(spec, dict) and "arch" not in spec:
            del preset_models[name]  # it resizes the demo's model, which these params do not declare
    models = {n for n in params["pretrain"]["models"] if n not in preset_models or preset_models[n] is not None}
    models |= {n for n, spec in preset_models.items() if spec is not None}
    for keys, names in ((MODEL_REFERENCES, models), (TASK_REFERENCES, set(params["tasks"]))):
        for key in keys:
            parent, last = lookup_in(kept, key.rpartition(".")[0]), key.rpartition(".")[2]
            value = parent.get(last)
            if isinstance(value, list):
                parent[last] = [n for n in value if n in names]
            elif isinstance(value, dict):
                parent[last] = {n: v for n, v in value.items() if n in names}
    return kept


def _sampled(spec: dict) -> dict | None:
    """The overlay that samples a hub or local dataset to at most OWN_DATA_SAMPLE (a mix: each of its
    parts), or None when it already is."""
    if spec["source"] == "mix":
        parts = {part: shrunk for part, sub in spec["parts"].items()
                 if sub.get("source") in ("hub", "local") and (shrunk := _sampled(sub)) is not None}
        return {"parts": parts} if parts else None
    now = spec.get("sample") or {}
    sample = {split: min(n, now.get(split, n)) for split, n in OWN_DATA_SAMPLE.items()}
    return None if sample == now else {"sample": sample}


def own_data_misfits(overlay: dict, params: dict) -> list[str]:
    """The entries of the preset's `data.datasets` and `tasks` that size a synthetic dataset, or a
    task, that `params` (validated) declare otherwise or not at all (`data.datasets.sentiment` over
    a local dataset of that name): merged, they are keys the real dataset does not have, or
    half-declared datasets and tasks."""
    datasets, tasks = params["data"]["datasets"], params["tasks"]
    misfits = [f"data.datasets.{name}" for name, spec in lookup_in(overlay, "data.datasets").items()
               if isinstance(spec, dict) and "source" not in spec
               and datasets.get(name, {}).get("source") != "synthetic"]
    misfits += [f"tasks.{name}" for name, spec in lookup_in(overlay, "tasks").items()
                if isinstance(spec, dict) and "type" not in spec and name not in tasks]
    return misfits


def lookup_in(mapping: dict, dotted: str) -> dict:
    """The mapping at a dotted key of `mapping`, or a new empty one where there is none."""
    for part in dotted.split(".") if dotted else []:
        mapping = mapping.get(part) if isinstance(mapping, dict) else None
    return mapping if isinstance(mapping, dict) else {}


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
