"""params.yaml against its JSON Schema (workflow/schemas/params.schema.yaml): reading YAML,
validating with defaults filled, the one-line messages, and the defaults themselves as both front
ends track them (`defaults`, written to workflow/schemas/defaults.yaml by `scratchlm dag --write`).

Every message names the key, the value and what is allowed."""

from __future__ import annotations

import copy
import datetime
import difflib
import functools
import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ScratchError

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"
DEFAULTS_FILE = SCHEMA_FILE.parent / "defaults.yaml"
SCHEMA_HELP = "see workflow/schemas/params.schema.yaml"


class Loader(yaml.SafeLoader):
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


Loader.add_implicit_resolver(
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
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    """YAML text as params.yaml is read (Loader); a problem is one line, `source:LINE: ...`."""
    try:
        return yaml.load(text, Loader=Loader)
    except yaml.YAMLError as e:
        raise ScratchError(f"{source}{_yaml_problem(e)}") from None


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
def schema() -> dict:
    return read_yaml(SCHEMA_FILE)


def key_name(path) -> str:
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
        return f"{key_name(error.absolute_path)}: unknown key {close!r} (did you mean {name!r}?); {name} is required"
    key = key_name([*error.absolute_path, name])
    sub = _resolve(schema(), error.schema.get("properties", {}).get(name, {}))
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
    if kind == "not":  # a value the schema excludes by name: its description says what is allowed
        return f"not allowed ({schema.get('description', SCHEMA_HELP)})"
    return error.message


def describe(error: jsonschema.ValidationError, source: str) -> str:
    key = key_name(error.absolute_path)
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


def check(params: dict, source: str) -> dict:
    """Validate a params dict in place against the schema, filling defaults; raise ScratchError
    with one line."""
    if not isinstance(params, dict):
        state = "is empty" if params is None else f"holds {_FOUND.get(type(params), 'a value')}"
        raise ScratchError(f"{source} {state}; it must be a mapping of sections, at least "
                           f"{', '.join(schema()['required'])} ({SCHEMA_HELP})")
    _check_finite(params, [], source)
    validator = _defaulting_validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(params))
    if error is not None:
        raise ScratchError(describe(error, source))
    return params


def _check_finite(node, path: list, source: str) -> None:
    """NaN and infinities are numbers to JSON Schema, and `nan > 0` is false, so a bound would let
    them through to torch: refused here, wherever they are."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ScratchError(f"{source}: {key_name(path)} = {node}: not a finite number; give a number "
                           f"({SCHEMA_HELP})")
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        _check_finite(child, [*path, key], source)




# ---------------------------------------------------------------- the defaults, as the front ends track them

_DEFAULT_BEARING = ("properties", "additionalProperties", "items")


def _reduced(node, root: dict, within: tuple[str, ...] = ()) -> dict:
    """What of a schema node decides the values validation fills in: its default, the reduced
    schemas of its properties, additional properties and items, and its conditional branches
    (`if` kept whole, as it picks the branch); descriptions, bounds and enums fill nothing. A
    reference met again inside itself (a mix's parts are datasets) stays a reference."""
    if not isinstance(node, dict):
        return {}
    found: dict = {}
    ref = node.get("$ref")
    if ref in within:
        found["$ref"] = ref
    elif ref:
        target = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        found = _reduced(target, root, (*within, ref))
    if "default" in node:
        found["default"] = node["default"]
    for key in _DEFAULT_BEARING:
        sub = node.get(key)
        if key == "properties" and isinstance(sub, dict):
            props = {**found.get(key, {}), **{k: r for k, v in sub.items() if (r := _reduced(v, root, within))}}
            if props:
                found[key] = props
        elif (r := _reduced(sub, root, within)):
            found[key] = r
    branches = [{"if": b["if"], "then": r} for b in node.get("allOf", []) if "if" in b
                and (r := _reduced(b.get("then"), root, within))]
    if branches:
        found["allOf"] = branches
    return found


@functools.cache
def defaults() -> dict:
    """The schema reduced to what fills defaults (`_reduced`): the content of
    workflow/schemas/defaults.yaml, which each DVC stage tracks beside params.yaml (and Snakemake
    alike), so that a changed default reruns the same stages in both front ends and an edited
    description reruns none."""
    return _reduced(schema(), schema())


def default_paths(key: str) -> list[str]:
    """The paths in defaults() that can set a params key's value (a template: `tasks.{task}.head`):
    each enclosing section's stated default, and the key's own reduced node; none when no default
    lies on the way."""
    node, path, found = defaults(), [], []
    parts = key.split(".")
    for i, part in enumerate(parts):
        for step in ["additionalProperties"] if part.startswith("{") else ["properties", part]:
            node = node.get(step, {})
            path.append(step)
        if not node:
            return found
        if i < len(parts) - 1 and "default" in node:
            found.append(".".join([*path, "default"]))
    return [*found, ".".join(path)]


def defaults_text() -> str:
    """workflow/schemas/defaults.yaml as generated from the schema."""
    return ("# GENERATED from params.schema.yaml by `scratchlm dag --write`: the schema reduced to what fills in\n"
            "# defaults. Each stage tracks the parts of it that set the params it reads (dvc.yaml, Snakemake's\n"
            "# params), so a changed default reruns the same stages in both front ends.\n"
            + yaml.dump(defaults(), Dumper=_NoAliases, sort_keys=False, width=120, allow_unicode=True))


class _NoAliases(yaml.SafeDumper):
    """A default shared by two keys is written out at both (DVC reads each key on its own)."""

    def ignore_aliases(self, data) -> bool:
        return True


def check_defaults_file() -> None:
    """The committed defaults file is the schema's: a default changed without `scratchlm dag --write`
    would change what stages compute while neither front end sees a change."""
    try:
        current = DEFAULTS_FILE.read_text(encoding="utf-8") == defaults_text()
    except FileNotFoundError:
        current = False
    if not current:
        raise ScratchError(f"{DEFAULTS_FILE} does not match {SCHEMA_FILE.name} (a default was changed); run "
                           f"`scratchlm dag --write`, which regenerates it and dvc.yaml")
