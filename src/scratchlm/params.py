"""params.yaml: load, validate against the JSON Schema (defaults filled), cross-check names.

Every stage calls `load()` before any work, so a bad value stops at once with one line
naming the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import difflib
import functools
import hashlib
import itertools
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import dag
from .errors import ScratchError
from .paths import EXTERNAL
from .published import BENCHMARKS
from .sources.readers import FORMATS, suffix_format
from .sources.synthetic import SENTIMENT_LABELS

PARAMS_FILE = Path("params.yaml")
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"
SCHEMA_HELP = "see workflow/schemas/params.schema.yaml"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `3e-4` as a float (YAML 1.2 does; PyYAML's 1.1 resolver does not)
    and refuses a key given twice in one mapping (PyYAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[str, int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            if key.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key.value!r} is given twice (first on line {seen[key.value]}); keep one",
                    key.start_mark)
            seen[key.value] = key.start_mark.line + 1
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: Path | str) -> Any:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScratchError(f"{path}: file not found; run from the repository root") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ScratchError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as "
                           f"UTF-8") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ScratchError(f"{path}{_yaml_problem(e)}") from None


def _yaml_problem(e: yaml.YAMLError) -> str:
    """":LINE: not valid YAML (problem; the construct it is in, with its first line)"."""
    mark, context, start = (getattr(e, a, None) for a in ("problem_mark", "context", "context_mark"))
    where = f":{mark.line + 1}" if mark else ""
    within = f"; {context} that starts on line {start.line + 1}" if context and start else ""
    return f"{where}: not valid YAML ({getattr(e, 'problem', e)}{within})"


def _resolve(root: dict, sub: dict) -> dict:
    """Follow local `$ref`s ("#/$defs/...") until a schema that states its own default."""
    while "default" not in sub and "$ref" in sub:
        node = root
        for part in sub["$ref"].lstrip("#/").split("/"):
            node = node[part]
        sub = node
    return sub


def _defaulting_validator(root: dict):
    """A validator of `root` that fills `default` values of properties while validating (the
    jsonschema FAQ recipe, plus following $ref to where a default is stated)."""
    validator_class = jsonschema.Draft202012Validator
    validate_props = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                sub = _resolve(root, sub)
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})(root)


@functools.cache
def _schema() -> dict:
    return read_yaml(SCHEMA_FILE)


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _closest(word, choices) -> str | None:
    """The one of `choices` close to a misspelt `word`; None when none is, or two are (a guess
    between them could mislead)."""
    close = difflib.get_close_matches(str(word).lower(), [str(c) for c in choices], n=2, cutoff=0.75)
    return close[0] if len(close) == 1 else None


def did_you_mean(word, choices) -> str:
    """ "; did you mean 'x'?" when `word` is close to one of `choices`, else ""."""
    close = _closest(word, choices)
    return f"; did you mean {close!r}?" if close else ""


def _show(value) -> str:
    return json.dumps(value, default=str)  # default: YAML also gives dates


_TYPES = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true or false",
          "array": "a list", "object": "a mapping", "null": "null"}
_FOUND = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping",
          type(None): "empty (null)", datetime.date: "a date (quote it for a string)"}
_BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
_AT_LEAST = {"minItems": "item", "minProperties": "entry", "minLength": "character"}


def _unknown(keys, allowed) -> str:
    """Keys that are not allowed, each with the allowed key it may be a misspelling of."""
    unknown = [k for k in keys if k not in allowed]
    named = ", ".join(f"{k!r}" + (f" (did you mean {c!r}?)" if (c := _closest(k, allowed)) else "") for k in unknown)
    return f"unknown key{'s' * (len(unknown) > 1)} {named} (allowed keys: {', '.join(allowed) or 'none'})"


def _missing(error: jsonschema.ValidationError) -> str:
    """A required key that is missing: another key may be its misspelling, else say what to add."""
    name = error.message.split("'")[1]
    close = _closest(name, [k for k in error.instance if k not in error.schema.get("properties", {})])
    if close:
        return f"{_key(error.absolute_path)}: unknown key {close!r} (did you mean {name!r}?); {name} is required"
    key = _key([*error.absolute_path, name])
    sub = _resolve(_schema(), error.schema.get("properties", {}).get(name, {}))
    fix = f"allowed: {', '.join(map(str, sub['enum']))}" if "enum" in sub else sub.get("description", SCHEMA_HELP)
    return f"{key} is missing (required); add it ({fix})"


def _expected(error: jsonschema.ValidationError) -> str:
    """What a value of the wrong type, out of range, empty or repeated should be instead."""
    kind, value, schema = error.validator, error.instance, error.schema
    if kind == "type":
        wanted = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
        found = _FOUND.get(type(value), type(value).__name__)
        return f"{found}, expected {' or '.join(_TYPES[t] for t in wanted)}"
    if kind in _BOUNDS:
        bounds = " and ".join(f"{op} {schema[b]}" for b, op in _BOUNDS.items() if b in schema)
        return f"{error.message} (allowed: {bounds})"
    if kind in _AT_LEAST:
        items = schema.get("items", {}).get("enum")
        choices = f" (allowed: {', '.join(items)})" if items else ""
        return f"empty; give at least {error.validator_value} {_AT_LEAST[kind]}{choices}"
    if kind == "uniqueItems":
        repeated = next(x for i, x in enumerate(value) if x in value[:i])
        return f"{_show(repeated)} is listed twice; keep one"
    return error.message


def _describe(error: jsonschema.ValidationError, source: str) -> str:
    key = _key(error.absolute_path)
    kind = error.validator
    if kind == "required":
        return f"{source}: {_missing(error)}"
    if kind == "additionalProperties":
        return f"{source}: {key}: {_unknown(error.instance, list(error.schema.get('properties', {})))}"
    if "propertyNames" in error.schema_path and kind == "enum":  # a key of a mapping, not a value
        return f"{source}: {key}: {_unknown([error.instance], error.validator_value)}"
    if kind == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return (f"{source}: {key} = {error.instance!r} is not allowed (allowed: {allowed})"
                f"{did_you_mean(error.instance, error.validator_value)}")
    if kind == "pattern":
        wanted = error.schema.get("description", "like " + error.validator_value)
        return f"{source}: {key} = {error.instance!r} must be {wanted}"
    return f"{source}: {key} = {_show(error.instance)}: {_expected(error)}"


def validate(params: dict, source: str = str(PARAMS_FILE)) -> dict:
    """Validate a params dict in place, filling defaults; raise ScratchError with one line."""
    if not isinstance(params, dict):
        state = "is empty" if params is None else f"holds {_FOUND.get(type(params), 'a value')}"
        raise ScratchError(f"{source} {state}; it must be a mapping of sections, at least "
                           f"{', '.join(_schema()['required'])} ({SCHEMA_HELP})")
    _check_finite(params, [], source)
    validator = _defaulting_validator(_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(params))
    if error is not None:
        raise ScratchError(_describe(error, source))
    _check_references(params, source)
    return params


def _check_finite(node, path: list, source: str) -> None:
    """NaN and infinities are numbers to JSON Schema, and `nan > 0` is false, so a bound would let
    them through to torch: refused here, wherever they are."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ScratchError(f"{source}: {_key(path)} = {node}: not a finite number; give a number "
                           f"({SCHEMA_HELP})")
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        _check_finite(child, [*path, key], source)


SYNTHETIC_KIND = {"sentiment": "classification", "ner": "ner", "corpus": "corpus"}
# the dataset kinds each consumer can read
TASK_KINDS = {"sequence-classification": ("classification",), "token-classification": ("ner",)}
# task type -> the metrics it is scored on: the main one first (the report's, compare's and the default
# validation metric that selects the checkpoint), then the one the report shows beside it; all
# greater-is-better
TASK_METRICS = {"sequence-classification": ("accuracy", "macro_f1"),
                "token-classification": ("entity_f1", "token_accuracy")}
TEXT_KINDS = ("corpus", "classification")
# the dataset kinds a local file format can hold (JSON, JSON Lines and Parquet hold any)
FORMAT_KINDS = {"conll": ("ner",), "csv": ("classification", "corpus"), "tsv": ("classification", "corpus"),
                "text": ("corpus",)}

# each option of tasks.<t>.head and the task type whose head has it; the fix for a task of another type
HEAD_OPTIONS = {"char_filters": "token-classification", "tagger_hidden": "token-classification",
                "crf": "token-classification", "reader_hidden": "sequence-classification"}
HEAD_FIX = {"sequence-classification": "remove tasks.{task}.head.{option}",
            "token-classification": "use tasks.{task}.head.tagger_hidden for a task BiLSTM over the words"}


def dataset_kind(spec: dict) -> str:
    """classification | ner | corpus."""
    return SYNTHETIC_KIND[spec["generator"]] if spec["source"] == "synthetic" else spec["kind"]


# stage -> the params sections its training settings come from, later ones overriding earlier ones
TRAINING_SECTIONS = {"pretrain": ("pretrain.training", "pretrain.models.{model}.training"),
                     "adapt": ("adapt.training", "adapt.overrides.{model}"),
                     "finetune": ("finetune.training", "tasks.{task}.training", "finetune.overrides.{model}"),
                     "prompting": ("finetune.prompting.training", "finetune.prompting.overrides.{model}")}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """A training run's optimisation settings: the stage's `training` section with the task's and
    the model's own overrides merged in, built in one place (training_config) and read by the
    training code."""
    epochs: float
    max_steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_ratio: float
    scheduler: str
    grad_clip: float
    eval_steps: int
    early_stopping_patience: int
    layers: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (params section, the settings it sets), in order

    def key(self, setting: str) -> str:
        """The params key a setting came from, for messages: `finetune.overrides.bert.lr`."""
        section = next((name for name, sets in reversed(self.layers) if setting in sets), self.layers[0][0])
        return f"{section}.{setting}"

    def replace(self, **changes) -> TrainingConfig:
        return dataclasses.replace(self, **changes)


def _lookup(p: dict, dotted: str) -> dict:
    for part in dotted.split("."):
        p = p.get(part, {})
    return p


def _layers(p: dict, stage: str, model: str, task: str | None) -> list[tuple[str, dict]]:
    names = [s.format(model=model, task=task) for s in TRAINING_SECTIONS[stage] if task or "{task}" not in s]
    return [(name, _lookup(p, name)) for name in names]


def training_section(p: dict, stage: str, model: str, task: str | None = None) -> dict:
    """The merged training settings of a model (on a task) in a stage, as a plain mapping."""
    return {k: v for _, layer in _layers(p, stage, model, task) for k, v in layer.items()}


def training_config(p: dict, stage: str, model: str, task: str | None = None) -> TrainingConfig:
    layers = _layers(p, stage, model, task)
    return TrainingConfig(**training_section(p, stage, model, task),
                          layers=tuple((name, tuple(layer)) for name, layer in layers))


def _check_overrides(p: dict, source: str) -> None:
    models = p["pretrain"]["models"]
    for section in ("adapt.overrides", "finetune.overrides", "finetune.prompting.overrides"):
        for name in _lookup(p, section):
            if name not in models:
                raise ScratchError(f"{source}: {section}.{name} names no model (declared: {', '.join(models)})")
    training = jsonschema.Draft202012Validator({"$defs": _schema()["$defs"], "$ref": "#/$defs/training"})
    for name in models:
        for stage in TRAINING_SECTIONS:
            for task in p["tasks"] if stage == "finetune" else [None]:
                merged = training_section(p, stage, name, task)
                error = jsonschema.exceptions.best_match(training.iter_errors(merged))
                if error is not None:
                    where = training_config(p, stage, name, task).key(str(error.path[0]) if error.path else "x")
                    error.path.extendleft(reversed(where.split(".")[:-1]))
                    raise ScratchError(_describe(error, source))
                if merged["batch_size"] % p["processes"]:  # the batch is split over the training processes
                    key = training_config(p, stage, name, task).key("batch_size")
                    raise ScratchError(f"{source}: {key} = {merged['batch_size']} does not split over processes = "
                                       f"{p['processes']}; make it a multiple of {p['processes']}")


def _check_dataset(name: str, spec: dict, source: str) -> None:
    """What the kind of a hub or local dataset contradicts: its benchmark, its files' formats; a
    mix's parts, each."""
    key, kind, bench = f"data.datasets.{name}", spec.get("kind"), spec.get("benchmark")
    if spec["source"] == "mix":
        for part, sub in spec["parts"].items():
            if sub["source"] == "mix":
                raise ScratchError(f"{source}: {key}.parts.{part} is a mix; a mix's parts are synthetic, hub or local "
                                   f"datasets (list the inner mix's parts instead)")
            _check_dataset(f"{name}.parts.{part}", sub, source)
        return
    if bench and BENCHMARKS[bench].kind != kind:
        raise ScratchError(f"{source}: {key}.benchmark = {bench!r} is a {BENCHMARKS[bench].kind} benchmark but "
                           f"kind is {kind!r}; correct kind, or remove benchmark")
    for split, path in spec.get("files", {}).items():
        if path:
            _check_file(source, key, spec, split)


def _check_file(source: str, key: str, spec: dict, split: str) -> None:
    """A local file's format (set, or told by its extension) can hold the dataset's kind."""
    path, kind = spec["files"][split], spec["kind"]
    where = f"{source}: {key}.files.{split} = {path!r}"
    inside = os.path.normpath(path)
    if not inside.startswith(str(EXTERNAL) + os.sep):
        raise ScratchError(f"{where}: leaves {EXTERNAL}/ (it resolves to {inside!r}); put the file under "
                           f"{EXTERNAL}/ (a link there to the file is fine), so both front ends track its content")
    fmt = suffix_format(Path(path), kind) if spec["format"] == "auto" else spec["format"]
    if fmt is None:
        raise ScratchError(f"{where}: cannot tell the format from the extension; set {key}.format to one of "
                           f"{', '.join(FORMATS)} (text: plain text, one document per line or paragraph)")
    if kind not in FORMAT_KINDS.get(fmt, (kind,)):
        raise ScratchError(f"{where}: a {fmt} file cannot hold a {kind} dataset (it holds "
                           f"{' or '.join(FORMAT_KINDS[fmt])}); correct kind or {key}.format, or convert the file "
                           f"(ner: CoNLL columns, JSON Lines or Parquet; corpus: plain text, CSV/TSV, JSON)")


def _check_references(p: dict, source: str) -> None:
    _check_overrides(p, source)
    datasets = p["data"]["datasets"]
    for name, spec in datasets.items():
        _check_dataset(name, spec, source)

    def need(key: str, name: str, kinds: tuple[str, ...]) -> None:
        if name not in datasets:
            raise ScratchError(f"{source}: {key} = {name!r} names no dataset (declared: {', '.join(datasets)})")
        kind = dataset_kind(datasets[name])
        if kind not in kinds:
            raise ScratchError(f"{source}: {key} = {name!r} is a {kind} dataset; it must be {' or '.join(kinds)}")

    for name, spec in p["pretrain"]["models"].items():
        key = f"{source}: pretrain.models.{name}"
        if spec["arch"] != "bert":
            continue
        if spec["checkpoint"]:
            if p["tokenizer"]["checkpoint"] != spec["checkpoint"]:
                raise ScratchError(f"{key}.checkpoint = {spec['checkpoint']!r} needs its own vocabulary: set "
                                   f"tokenizer.checkpoint to it (every model then shares that tokenizer), "
                                   f"or remove checkpoint to pretrain from scratch")
            continue
        if spec["hidden_size"] % spec["num_heads"]:
            raise ScratchError(f"{key}.num_heads = {spec['num_heads']} must divide hidden_size = {spec['hidden_size']}")
        longest = max(p["encode"]["max_length"], p["pack"]["block_size"])
        if spec["max_position"] < longest:
            raise ScratchError(f"{key}.max_position = {spec['max_position']} is shorter than the longest input "
                               f"({longest}: encode.max_length / pack.block_size); raise max_position to at "
                               f"least {longest}, or lower those")
    need("tokenizer.corpus", p["tokenizer"]["corpus"], ("corpus", "classification", "ner"))
    need("pretrain.corpus", p["pretrain"]["corpus"], TEXT_KINDS)
    for task, spec in p["tasks"].items():
        need(f"tasks.{task}.dataset", spec["dataset"], TASK_KINDS[spec["type"]])
        metrics = TASK_METRICS[spec["type"]]
        spec.setdefault("metric", metrics[0])
        if spec["metric"] not in metrics:
            raise ScratchError(f"{source}: tasks.{task}.metric = {spec['metric']!r} does not apply to "
                               f"{spec['type']} (use {' or '.join(metrics)})")
        for option, owner in HEAD_OPTIONS.items():
            if spec["head"][option] and spec["type"] != owner:
                fix = HEAD_FIX[spec["type"]].format(task=task, option=option)
                raise ScratchError(f"{source}: tasks.{task}.head.{option} is an option of the {owner} head, and "
                                   f"{task} is {spec['type']}; {fix}")
    _check_extra_runs(p, source)


def _check_prompting(p: dict, source: str) -> None:
    """The prompt methods' tasks classify sequences, and every label has a verbalizer."""
    prompting = p["finetune"]["prompting"]
    for task in prompting["tasks"]:
        if task not in p["tasks"]:
            raise ScratchError(f"{source}: finetune.prompting.tasks has {task!r}, which names no task (declared: "
                               f"{', '.join(p['tasks'])})")
        spec = p["tasks"][task]
        if spec["type"] != "sequence-classification":
            raise ScratchError(f"{source}: finetune.prompting.tasks has {task!r}, a {spec['type']} task; prompts "
                               f"classify whole texts (an NER tag per word has no single slot to fill): remove it")
        names = p["data"]["datasets"][spec["dataset"]].get("label_names") or (
            SENTIMENT_LABELS if p["data"]["datasets"][spec["dataset"]]["source"] == "synthetic" else None)
        missing = [n for n in names or [] if n not in spec["prompt"]["verbalizers"]]
        if missing:
            raise ScratchError(f"{source}: tasks.{task}.prompt.verbalizers has no words for label {missing[0]!r}; "
                               f"add `{missing[0]}: [a word]` (labels: {', '.join(names)})")
    for name in prompting["models"]:
        if name not in p["pretrain"]["models"]:
            raise ScratchError(f"{source}: finetune.prompting.models has {name!r}, which names no model (declared: "
                               f"{', '.join(p['pretrain']['models'])})")


def _check_extra_runs(p: dict, source: str) -> None:
    _check_prompting(p, source)
    models = p["pretrain"]["models"]
    for name in p["adapt"]["ablation"]["models"]:
        if name not in models:
            raise ScratchError(f"{source}: adapt.ablation.models has {name!r}, which names no model (declared: "
                               f"{', '.join(models)})")
    if p["adapt"]["ablation"]["models"] and not p["adapt"]["enabled"]:
        raise ScratchError(f"{source}: adapt.ablation compares runs from the adapted and the general model, but "
                           f"adapt.enabled = false (both are the general model); set adapt.enabled: true or "
                           f"adapt.ablation.models: []")
    if p["finetune"]["ulmfit"]["slanted_triangular"]:  # it replaces the scheduler in the recurrent full runs
        for (name, spec), task in itertools.product(models.items(), p["tasks"]):
            cfg = training_config(p, "finetune", name, task)
            if spec["arch"] == "recurrent" and cfg.scheduler != "linear":
                raise ScratchError(f"{source}: {cfg.key('scheduler')} = {cfg.scheduler!r} but "
                                   f"finetune.ulmfit.slanted_triangular = true replaces it with ULMFiT's linear "
                                   f"rise and decay in {name}'s full runs; set one of them")
    for section in ("lora", "data_efficiency"):
        for name in p["finetune"][section]["models"]:
            if name not in models:
                raise ScratchError(f"{source}: finetune.{section}.models has {name!r}, which names no model "
                                   f"(declared: {', '.join(models)})")
    for task in p["finetune"]["data_efficiency"]["tasks"]:
        if task not in p["tasks"]:
            raise ScratchError(f"{source}: finetune.data_efficiency.tasks has {task!r}, which names no task "
                               f"(declared: {', '.join(p['tasks'])})")
    for name in p["finetune"]["lora"]["models"]:
        if models[name]["arch"] != "bert":
            raise ScratchError(f"{source}: finetune.lora.models has {name!r}, a recurrent model: PEFT's LoRA "
                               f"adapts Linear layers and nn.{models[name]['cell'].upper()} keeps its weights "
                               f"fused; remove it (lora is for bert models)")


def load(path: Path | str = PARAMS_FILE) -> dict:
    """params.yaml validated, defaults filled, and holding every key the stages track."""
    path = Path(path)
    raw = read_yaml(path)
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
