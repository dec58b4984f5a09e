"""Cross-checks of params.yaml that the schema cannot express: names that must refer to declared
datasets, tasks and models; kinds that must fit (a task's dataset, a file's format, a benchmark);
training settings checked merged with their overrides; options that contradict each other.

Each raises ScratchError with one line naming the key and the fix, before any work."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import jsonschema

from .dag import lookup
from .errors import ScratchError
from .kinds import (
    BENCHMARK_KINDS,
    FORMAT_KINDS,
    FORMATS,
    SENTIMENT_LABELS,
    TASK_KINDS,
    TASK_METRICS,
    TEXT_KINDS,
    dataset_kind,
    suffix_format,
)
from .paths import EXTERNAL
from .schema import describe, schema
from .training_config import TRAINING_SECTIONS, setting_key, training_config, training_section

# each option of tasks.<t>.head and the task type whose head has it; the fix for a task of another type
HEAD_OPTIONS = {"char_filters": "token-classification", "tagger_hidden": "token-classification",
                "crf": "token-classification", "reader_hidden": "sequence-classification"}
HEAD_FIX = {"sequence-classification": "remove tasks.{task}.head.{option}",
            "token-classification": "use tasks.{task}.head.tagger_hidden for a task BiLSTM over the words"}


def _check_overrides(p: dict, source: str) -> None:
    models = p["pretrain"]["models"]
    for section in ("adapt.overrides", "finetune.overrides", "finetune.prompting.overrides"):
        for name in lookup(p, section):
            if name not in models:
                raise ScratchError(f"{source}: {section}.{name} names no model (declared: {', '.join(models)})")
    training = jsonschema.Draft202012Validator({"$defs": schema()["$defs"], "$ref": "#/$defs/training"})
    for name in models:
        for stage in TRAINING_SECTIONS:
            for task, method in _training_runs(p, stage):
                merged = training_section(p, stage, name, task, method)
                error = jsonschema.exceptions.best_match(training.iter_errors(merged))
                if error is not None:  # said at the key that set it (an override, or the section)
                    known = schema()["$defs"]["training"]["properties"]
                    setting = str(error.path[0]) if error.path else next(k for k in merged if k not in known)
                    where = setting_key(p, stage, name, task, setting, method)
                    error.path.extendleft(reversed(where.split(".")[:-1]))
                    raise ScratchError(describe(error, source))
                if merged["batch_size"] % p["processes"]:  # the batch is split over the training processes
                    key = setting_key(p, stage, name, task, "batch_size", method)
                    raise ScratchError(f"{source}: {key} = {merged['batch_size']} does not split over processes = "
                                       f"{p['processes']}; make it a multiple of {p['processes']}")


def _training_runs(p: dict, stage: str) -> list[tuple[str | None, str | None]]:
    """(task, method) pairs whose merged training settings differ for a stage: fine-tuning's per
    task, and per method where a task overrides one."""
    if stage != "finetune":
        return [(None, None)]
    return [(task, method) for task, spec in p["tasks"].items() for method in [None, *spec["method_overrides"]]]


def _check_dataset(name: str, spec: dict, source: str) -> None:
    """What the kind of a hub or local dataset contradicts: its benchmark, its files' formats; a
    mix's parts, each."""
    key, kind, bench = f"data.datasets.{name}", spec.get("kind"), spec.get("benchmark")
    if spec["source"] == "mix":
        for part, sub in spec["parts"].items():
            if sub["source"] == "mix":
                raise ScratchError(f"{source}: {key}.parts.{part} is a mix; a mix's parts are hub or local datasets "
                                   f"(list the inner mix's parts instead)")
            if sub["source"] == "synthetic":  # a mix job tracks the readers' code, not the generators'
                raise ScratchError(f"{source}: {key}.parts.{part} is synthetic; a mix's parts are hub or local "
                                   f"datasets: use the synthetic corpus as a dataset of its own (generator: corpus)")
            _check_dataset(f"{name}.parts.{part}", sub, source)
        return
    if bench and BENCHMARK_KINDS[bench] != kind:
        raise ScratchError(f"{source}: {key}.benchmark = {bench!r} is a {BENCHMARK_KINDS[bench]} benchmark but "
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


def check(p: dict, source: str) -> None:
    """Every cross-check, in order; `p` validated against the schema (defaults filled)."""
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

    lms, seeds = p["pretrain"]["seeds"], p["finetune"]["seeds"]
    if len(seeds) < len(lms):
        raise ScratchError(f"{source}: pretrain.seeds lists {len(lms)} LMs per model but finetune.seeds only "
                           f"{len(seeds)} seeds, so LM {lms[len(seeds)]} would train for nothing (fine-tuning seed k "
                           f"starts from LM k mod n): give at least as many fine-tuning seeds, or remove LMs")
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
            cfg = training_config(p, "finetune", name, task, method="full")
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


def _texts_of(spec: dict) -> set[str]:
    """Where a dataset's text comes from: its files, its hub id, or the synthetic generators."""
    if spec["source"] == "mix":
        return set().union(*(_texts_of(sub) for sub in spec["parts"].values()))
    if spec["source"] == "local":
        return {path for path in spec["files"].values() if path}
    return {spec["path"]} if spec["source"] == "hub" else {"synthetic"}


def warnings(p: dict) -> list[str]:
    """What is allowed but probably not meant, one line each: a tokenizer or pretraining corpus that
    shares no text with a task's data (the README's own-data example left them on the synthetic
    corpus, so a tokenizer trained on our generated text cut the user's CoNLL words)."""
    datasets, found = p["data"]["datasets"], []
    for key in ("tokenizer.corpus", "pretrain.corpus"):
        corpus = lookup(p, key)
        for task, spec in p["tasks"].items():
            if not _texts_of(datasets[corpus]) & _texts_of(datasets[spec["dataset"]]):
                found.append(f"{key} = {corpus!r} shares no text with task {task}'s dataset {spec['dataset']!r}: "
                             f"point it at a dataset (or a mix) that holds the task's training text")
    return found
