"""params.yaml: load, validate against the JSON Schema (defaults filled), cross-check names.

Every stage calls `load()` before any work, so a bad value stops at once with one line
naming the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ScratchError

PARAMS_FILE = Path("params.yaml")
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `3e-4` as a float (YAML 1.2 does; PyYAML's 1.1 resolver does not)."""


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


def read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_Loader)
    except FileNotFoundError:
        raise ScratchError(f"{path}: file not found; run from the repository root") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ScratchError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)})") from None


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


def _describe(error: jsonschema.ValidationError, source: str) -> str:
    key = _key(error.absolute_path)
    kind = error.validator
    if kind == "required":
        missing = error.message.split("'")[1]
        return f"{source}: {_key([*error.absolute_path, missing])} is missing (required)"
    if kind == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties", {})) or "none"
        return f"{source}: {key}: {error.message} (allowed keys: {allowed})"
    if kind == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{source}: {key} = {error.instance!r} is not allowed (allowed: {allowed})"
    if kind == "pattern":
        return f"{source}: {key} = {error.instance!r} must be {error.schema.get('description', 'like ' + error.validator_value)}"
    return f"{source}: {key} = {json.dumps(error.instance)}: {error.message}"


def validate(params: dict, source: str = str(PARAMS_FILE)) -> dict:
    """Validate a params dict in place, filling defaults; raise ScratchError with one line."""
    if not isinstance(params, dict):
        raise ScratchError(f"{source}: must be a mapping of sections (data, tokenizer, ...)")
    validator = _defaulting_validator(_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(params))
    if error is not None:
        raise ScratchError(_describe(error, source))
    _check_references(params, source)
    return params


SYNTHETIC_KIND = {"sentiment": "classification", "ner": "ner", "corpus": "corpus"}
# the dataset kinds each consumer can read
TASK_KINDS = {"sequence-classification": ("classification",), "token-classification": ("ner",)}
# task type -> the validation metrics it can select on, the default first
TASK_METRICS = {"sequence-classification": ("accuracy", "macro_f1"),
                "token-classification": ("entity_f1", "token_accuracy")}
TEXT_KINDS = ("corpus", "classification")


def dataset_kind(spec: dict) -> str:
    """classification | ner | corpus."""
    return SYNTHETIC_KIND[spec["generator"]] if spec["source"] == "synthetic" else spec["kind"]


def pretraining(p: dict, model: str) -> dict:
    """pretrain.training with the model's own overrides merged in."""
    return {**p["pretrain"]["training"], **p["pretrain"]["models"][model].get("training", {})}


def finetuning(p: dict, model: str) -> dict:
    """finetune.training with finetune.overrides.<model> merged in."""
    return {**p["finetune"]["training"], **p["finetune"]["overrides"].get(model, {})}


def _check_overrides(p: dict, source: str) -> None:
    models = p["pretrain"]["models"]
    for name in p["finetune"]["overrides"]:
        if name not in models:
            raise ScratchError(f"{source}: finetune.overrides.{name} names no model (declared: {', '.join(models)})")
    training = jsonschema.Draft202012Validator({"$defs": _schema()["$defs"], "$ref": "#/$defs/training"})
    for name in models:
        for merged, where in ((pretraining(p, name), ["pretrain", "models", name, "training"]),
                              (finetuning(p, name), ["finetune", "overrides", name])):
            error = jsonschema.exceptions.best_match(training.iter_errors(merged))
            if error is not None:
                error.path.extendleft(reversed(where))
                raise ScratchError(_describe(error, source))


def _check_references(p: dict, source: str) -> None:
    _check_overrides(p, source)
    datasets = p["data"]["datasets"]

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
        longest = max(p["tokenize"]["max_length"], p["pack"]["block_size"])
        if spec["max_position"] < longest:
            raise ScratchError(f"{key}.max_position = {spec['max_position']} is shorter than the longest input "
                               f"({longest}: tokenize.max_length / pack.block_size)")
    need("tokenizer.corpus", p["tokenizer"]["corpus"], ("corpus", "classification", "ner"))
    need("pretrain.corpus", p["pretrain"]["corpus"], TEXT_KINDS)
    for task, spec in p["tasks"].items():
        need(f"tasks.{task}.dataset", spec["dataset"], TASK_KINDS[spec["type"]])
        metrics = TASK_METRICS[spec["type"]]
        spec.setdefault("metric", metrics[0])
        if spec["metric"] not in metrics:
            raise ScratchError(f"{source}: tasks.{task}.metric = {spec['metric']!r} does not apply to "
                               f"{spec['type']} (use {' or '.join(metrics)})")
    _check_extra_runs(p, source)


def _check_extra_runs(p: dict, source: str) -> None:
    models = p["pretrain"]["models"]
    for section in ("lora", "data_efficiency"):
        for name in p["finetune"][section]["models"]:
            if name not in models:
                raise ScratchError(f"{source}: finetune.{section}.models has {name!r}, which names no model "
                                   f"(declared: {', '.join(models)})")
    for name in p["finetune"]["lora"]["models"]:
        if models[name]["arch"] != "bert":
            raise ScratchError(f"{source}: finetune.lora.models has {name!r}, a recurrent model: PEFT's LoRA "
                               f"adapts Linear layers and nn.{models[name]['cell'].upper()} keeps its weights "
                               f"fused; remove it (lora is for bert models)")


def load(path: Path | str = PARAMS_FILE) -> dict:
    path = Path(path)
    return validate(read_yaml(path), str(path))


def digest(params: dict) -> str:
    """A short stable hash of the validated params, shown in the report."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
