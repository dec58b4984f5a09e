"""The pipeline as data: one table of stages (their wildcards, inputs, outputs and params keys).

The Snakefile's rules read their inputs, outputs, params and commands from it; dvc.yaml is
generated from it (`scratchlm dag --write`; a test checks the committed file is what it
generates); the CLI builds its stage subcommands from it; the report and the tests enumerate the
jobs with it. Each stage's code dependencies are computed from the package's import graph
(`code_deps`), so no list of source files is kept by hand.

Templates: `{task}`-style wildcards; `<key.path>` reads a params value (`<pretrain.corpus>`,
`<tasks.{task}.dataset>`). A fine-tuning run (`{run}`) is a method, LoRA, or a method on a
share of the labels (`full`, `lora`, `full-0.1`); DVC needs one matrix per kind of run (a
matrix is a full product and cannot leave cells out), Snakemake one rule.
"""

from __future__ import annotations

import ast
import copy
import functools
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from . import console, methods, paths, schema
from .training_config import model_layers, training_config

PACKAGE = Path(__file__).resolve().parent
SRC = PACKAGE.parent


class Run(NamedTuple):
    """One fine-tuning run. Its folder name is the `run` wildcard: the method (`full`, `lora`,
    `prompt`), the method on a share of the labels (`full-0.1`) or on a number of labelled
    examples per class (`pet-16shot`), or fine-tuned from the general pretrained model where the
    others start from the task-adapted one (`full-general`, the adaptation ablation)."""
    task: str
    model: str
    method: str
    fraction: float = 1.0
    general: bool = False
    shots: int = 0

    @property
    def name(self) -> str:
        return (self.method + ("-general" if self.general else "") + (f"-{self.fraction:g}" if self.fraction != 1.0
                                                                      else "") + (f"-{self.shots}shot" if self.shots
                                                                                  else ""))

    @property
    def kind(self) -> str:
        """Which group of runs (one dvc.yaml matrix each) holds it."""
        own = next((suffix for suffix, kind in RUN_KINDS.items() if kind.fixed.get("method") == self.method), None)
        if own is not None:
            return own
        return ("_shots" if self.shots else "_general" if self.general else "_fraction" if self.fraction != 1.0
                else "")

    @property
    def job(self) -> str:
        """Its job name: the path under results/timing/<stage>/ and logs/<stage>/, without suffix."""
        return f"{self.task}/{self.model}/{self.name}"

    def dvc_stage(self, stage: str) -> str:
        values = {"task": self.task, "model": self.model, "method": self.method, "fraction": f"{self.fraction:g}",
                  "shots": str(self.shots)}
        return f"{stage}{self.kind}@" + "-".join(values[dim] for dim in RUN_KINDS[self.kind].matrix)

    @classmethod
    def parse(cls, task: str, model: str, name: str) -> Run:
        method, *rest = name.split("-")
        shots = next((int(r[:-4]) for r in rest if r.endswith("shot")), 0)
        fraction = next((float(r) for r in rest if r != "general" and not r.endswith("shot")), 1.0)
        return cls(task, model, method, fraction, "general" in rest, shots)


class RunKind(NamedTuple):
    """A group of runs: the params lists its DVC matrix spans, its run name, the methods its runs
    can have, where their training settings come from (training_config.TRAINING_SECTIONS), the
    model they start from, and what all its runs share (a method, the general start)."""
    matrix: dict[str, str]
    name: str
    methods: tuple[str, ...]
    training: str
    start: str
    fixed: dict

    @property
    def params(self) -> tuple[str, ...]:
        """The params its runs read beyond every run's: their methods' and their training sections'."""
        return tuple(dict.fromkeys([*TRAINING_KEYS[self.training], *methods.reads(self.methods)]))

    @property
    def inputs(self) -> tuple[str, ...]:
        """The files its runs read beyond every run's: the model they start from, their settings."""
        return (self.start, *TRAINING_INPUTS[self.training])


# a RunKind's `training` -> the params keys holding its training sections (whole mappings: a model without
# overrides has no key of its own, and DVC refuses a tracked key that params.yaml lacks), or the file the
# `settings` stage writes them to (a DVC matrix has one params list for every model; the file has each
# model's own, so a value that a model's override pins does not rerun its runs)
TRAINING_KEYS = {"finetune": (), "prompting": ("finetune.prompting",)}
TRAINING_INPUTS = {"finetune": (paths.SETTINGS,), "prompting": ()}
HEADS = ("full", "frozen", "scratch")  # the methods a run list in params may name (the schema's enums)

RUN_KINDS = {
    "": RunKind({"task": "tasks", "model": "pretrain.models", "method": "finetune.methods"}, "{method}", HEADS,
                "finetune", paths.ADAPTED, {}),
    "_lora": RunKind({"task": "tasks", "model": "finetune.lora.models"}, "lora", ("lora",), "finetune",
                     paths.ADAPTED, {"method": "lora"}),
    "_fraction": RunKind({"task": "finetune.data_efficiency.tasks", "model": "finetune.data_efficiency.models",
                          "method": "finetune.data_efficiency.methods",
                          "fraction": "finetune.data_efficiency.fractions"}, "{method}-{fraction}", HEADS,
                         "finetune", paths.ADAPTED, {}),
    "_general": RunKind({"task": "tasks", "model": "adapt.ablation.models", "method": "adapt.ablation.methods"},
                        "{method}-general", ("full", "frozen"), "finetune", paths.PRETRAINED, {"general": True}),
    "_prompt": RunKind({"task": "finetune.prompting.tasks", "model": "finetune.prompting.models"}, "prompt",
                       ("prompt",), "prompting", paths.ADAPTED, {"method": "prompt"}),
    "_shots": RunKind({"task": "finetune.prompting.tasks", "model": "finetune.prompting.models",
                       "method": "finetune.prompting.methods", "shots": "finetune.prompting.shots"},
                      "{method}-{shots}shot", ("pet", *HEADS), "prompting", paths.ADAPTED, {}),
}


def runs(params: dict) -> list[Run]:
    """Every fine-tuning run that params declare, kind by kind (as the matrices of dvc.yaml)."""
    found = []
    for kind in RUN_KINDS.values():
        lists = [lookup(params, key) for key in kind.matrix.values()]
        found += [Run(**kind.fixed, **dict(zip(kind.matrix, values))) for values in itertools.product(*lists)]
    return found


def lm_seed(params: dict, seed: int) -> int:
    """The pretraining seed of the LM that fine-tuning seed `seed` starts from: the k-th seed of
    finetune.seeds takes the (k mod n)-th of the n pretrain.seeds, so the LMs share the seeds
    evenly and a run's spread covers pretraining's variance as well as fine-tuning's."""
    lms = lookup(params, "pretrain.seeds")
    return lms[lookup(params, "finetune.seeds").index(seed) % len(lms)]


# ---------------------------------------------------------------- the table

@dataclass(frozen=True)
class Out:
    template: str
    cache: bool = True  # DVC cache (data, models) or git (small results)
    directory: bool = False
    role: str = "out"  # out | metric | plot: what DVC lists it as
    report: str | None = None  # Snakemake --report category
    plot: tuple[tuple[str, str], ...] = ()  # a plot's DVC properties (template, x, y, title)
    persist: bool = False  # DVC leaves it in place while the stage runs (the stage keeps equal bytes' date)


# wildcard -> the params mapping whose names it takes (or list whose values: the pretraining seeds)
COLLECTIONS = {"dataset": "data.datasets", "task": "tasks", "model": "pretrain.models", "seed": "pretrain.seeds"}


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    wildcards: tuple[str, ...]  # one job per combination; dvc.yaml: a foreach over one, else a matrix
    inputs: tuple[str, ...]  # earlier stages' outputs, as templates
    outs: tuple[Out, ...]
    params: tuple[str, ...]  # the params keys it reads (changing one reruns it), as templates
    training: bool = False  # claims half the cores and, on a GPU machine, a `gpu` unit
    timed: bool = True  # writes results/timing/<stage>[/<job>].json
    reads_results_of: tuple[str, ...] = ()  # (report) every results/ output of these stages' jobs
    runs: bool = False  # one job per fine-tuning run (wildcards task, model, run)
    code: tuple[str, ...] = ()  # source files a job runs beyond its stage module's imports (templates)
    settings_of: str | None = None  # writes a model's layers of these training sections: Snakemake tracks those

    @property
    def foreach(self) -> str | None:
        """The params mapping a one-wildcard stage iterates over (a foreach in dvc.yaml)."""
        return COLLECTIONS[self.wildcards[0]] if len(self.wildcards) == 1 else None

    def timing_out(self) -> Out:
        return Out(str(paths.timing(self.name, job_template(self.wildcards))), cache=False)

    @property
    def all_outs(self) -> tuple[Out, ...]:
        return (self.timing_out(), *self.outs) if self.timed else self.outs


# an LM's jobs train under their `seed` wildcard (a value of pretrain.seeds); the global seed picks the
# validation blocks (and masks) every LM is scored on, so that their scores compare
TRAINING_PARAMS = ("seed", "device", "precision", "processes")

# DVC's plots are the ones a person reads: the report's figures, and each task's validation curves
# in one chart (a panel per task, a line per run; workflow/plots/curves.json draws them). Every
# run's own curves (DVCLive TSVs) and confusion rows are plain outputs: `dvc plots show <path>`.
CURVES_PLOT = (("template", "workflow/plots/curves.json"), ("x", "step"), ("y", "value"),
               ("title", "Validation curves: a panel per task (and the LMs), a line per run"))

STAGES = {s.name: s for s in [
    Stage("data", "Get a dataset into data/raw/<name>", ("dataset",),
          inputs=(str(paths.EXTERNAL),),
          outs=(Out(paths.RAW, directory=True), Out(paths.DATA_STATS, cache=False)),
          params=("seed", "data.datasets.{dataset}"),
          # the module of the dataset's source: the generators are imported by name, so only a synthetic
          # dataset's job depends on them (the file readers, which a mix shares, are the stage's own imports)
          code=("src/scratchlm/sources/<data.datasets.{dataset}.source>.py",)),
    Stage("tokenizer", "Train the tokenizer into models/tokenizer", (),
          inputs=(paths.RAW.replace("{dataset}", "<tokenizer.corpus>"),),
          outs=(Out(paths.TOKENIZER, directory=True),),
          params=("tokenizer",)),
    Stage("encode", "Encode a task's dataset into token ids in data/encoded/<task>", ("task",),
          inputs=(paths.RAW.replace("{dataset}", "<tasks.{task}.dataset>"), paths.TOKENIZER),
          outs=(Out(paths.ENCODED, directory=True),),
          params=("tasks.{task}.dataset", "tasks.{task}.type", "encode")),  # not its training knobs
    Stage("pack", "Cut the pretraining corpus into LM blocks in data/blocks/<corpus>", (),
          inputs=(paths.RAW.replace("{dataset}", "<pretrain.corpus>"), paths.TOKENIZER),
          outs=(Out(paths.BLOCKS.replace("{corpus}", "<pretrain.corpus>"), directory=True),),
          params=("pretrain.corpus", "pack")),
    Stage("pretrain", "Pretrain a language model into models/pretrain/<model>/seed<seed>", ("model", "seed"),
          inputs=(paths.TOKENIZER, paths.BLOCKS.replace("{corpus}", "<pretrain.corpus>")),
          outs=(Out(paths.PRETRAINED, directory=True), Out(paths.PRETRAIN_SAMPLES, cache=False),
                Out(paths.PRETRAIN_METRICS, cache=False),
                Out(paths.PRETRAIN_PLOTS, cache=False, directory=True)),
          params=(*TRAINING_PARAMS, "pretrain.corpus", "pretrain.models.{model}", "pretrain.training",
                  "pretrain.eval_blocks"),
          training=True),
    Stage("adapt", "Continue a pretrained model's LM training on a task's training text (ULMFiT's middle step)",
          ("task", "model", "seed"),
          inputs=(paths.TOKENIZER, paths.PRETRAINED, paths.ENCODED),
          outs=(Out(paths.ADAPTED, directory=True), Out(paths.ADAPT_METRICS, cache=False),
                Out(paths.ADAPT_PLOTS, cache=False, directory=True)),
          params=(*TRAINING_PARAMS, "pretrain.models.{model}", "pack.block_size", "adapt.enabled", "adapt.training",
                  "adapt.overrides", "adapt.eval_blocks"), training=True),
    Stage("settings", "Write a model's fine-tuning settings, as its runs see them, to "
          "results/settings/finetune/<model>.json", ("model",), inputs=(),
          outs=(Out(paths.SETTINGS, cache=False, persist=True),), params=("finetune.training", "finetune.overrides"),
          timed=False, settings_of="finetune"),
    Stage("finetune", "Fine-tune a task-adapted (or the general) model on a task in one run, under every seed",
          ("task", "model", "run"), runs=True,
          inputs=(paths.TOKENIZER, paths.ENCODED),
          outs=(Out(paths.FINETUNED, directory=True), Out(paths.FINETUNE_METRICS, cache=False),
                Out(paths.FINETUNE_PLOTS, cache=False, directory=True)),
          # which LM a seed starts from: pretrain.seeds (lm_seed); and its kind's (RunKind.params)
          params=(*TRAINING_PARAMS, "tasks.{task}", "finetune.seeds", "pretrain.seeds"),
          training=True),
    Stage("evaluate", "Score a fine-tuned run on the test split", ("task", "model", "run"), runs=True,
          inputs=(paths.FINETUNED, paths.FINETUNE_METRICS, paths.ENCODED),
          outs=(Out(paths.DETAILS, cache=False), Out(paths.PREDICTIONS, cache=False),
                Out(paths.METRICS, cache=False, role="metric"), Out(paths.CONFUSION, cache=False)),
          params=("device", "evaluate", "tasks.{task}.type", "finetune.seeds")),
    Stage("report", "Write results/report.md, report.html and the figures", (), timed=False,
          reads_results_of=("data", "pretrain", "adapt", "finetune", "evaluate"), inputs=(),
          outs=(Out(paths.REPORT, cache=False, report="Report"), Out(paths.REPORT_HTML, cache=False, report="Report"),
                Out(paths.HEADLINE, cache=False, role="metric"),
                Out(paths.CURVES, cache=False, role="plot", plot=CURVES_PLOT),
                Out(paths.FIGURES, cache=False, directory=True, role="plot", report="Figures")),
          # every run's place in its tables, the datasets' sources, what made the run (and their hash)
          params=("seed", "device", "data.datasets", "tasks", "pretrain.models", "pretrain.seeds", "adapt.ablation",
                  "finetune.methods",
                  "finetune.seeds", "finetune.lora.models", "finetune.data_efficiency", "finetune.prompting",
                  "report")),
]}


# ---------------------------------------------------------------- templates

_REF = re.compile(r"<([^<>]+)>")


def lookup(params: dict, dotted: str):
    value = params
    for part in dotted.split("."):
        value = value[part]
    return value


def fill(template: str, params: dict, wildcards: dict | None = None) -> str:
    """A template with its params references and its wildcards filled in (wildcards None: the
    references only, the wildcards left for Snakemake)."""
    resolved = _REF.sub(lambda m: str(lookup(params, m.group(1).format(**(wildcards or {})))), template)
    return resolved if wildcards is None else resolved.format(**wildcards)


class Job(NamedTuple):
    """One run of a stage: its wildcards' values."""
    stage: str
    wildcards: dict

    @property
    def name(self) -> str | None:
        """Its job name under results/timing/<stage>/ (None for a stage run once)."""
        if STAGES[self.stage].runs:
            return self.run.job
        return job_template(STAGES[self.stage].wildcards, self.wildcards)

    @property
    def run(self) -> Run:
        return Run.parse(self.wildcards["task"], self.wildcards["model"], self.wildcards["run"])

    def priority(self, params: dict) -> int:
        """Snakemake's order among ready jobs: the longest first (list scheduling's rule), so that no
        long run is left to run alone at the end while a core idles (the real-cpu run at f27a782 started
        CoNLL's `full` run after SST-2's, and it ran its last 11 minutes alone). How long a run takes is
        not known before its data is read: its epoch cap stands for it (each task's is sized to where its
        runs converge; a share of the labels divides it), a `scratch` control before the pretrained run
        of the same cap (from random weights it trains longest), and an adaptation counts as the longest
        run that waits for it (a control too: it reads the LM's config there)."""
        if self.stage == "adapt":
            waiting = [r for r in runs(params) if (r.task, r.model) == (self.wildcards["task"], self.wildcards["model"])
                       and RUN_KINDS[r.kind].start == paths.ADAPTED]
            return max((Job("finetune", {"task": r.task, "model": r.model, "run": r.name}).priority(params)
                        for r in waiting), default=0)
        if self.stage != "finetune":
            return 0
        run = self.run
        cfg = training_config(params, RUN_KINDS[run.kind].training, run.model, run.task, None, run.method)
        return round(2 * cfg.epochs / run.fraction) + (run.method == "scratch")

    @property
    def dvc_stage(self) -> str:
        """DVC's name for it: `data@sentiment`, `finetune@sentiment-gru-full`,
        `finetune_lora@ner-bert`, `evaluate_fraction@ner-gru-full-0.1`, `report`."""
        if STAGES[self.stage].runs:
            return self.run.dvc_stage(self.stage)
        keys = [str(self.wildcards[w]) for w in STAGES[self.stage].wildcards]
        return f"{self.stage}@{'-'.join(keys)}" if keys else self.stage

    def outputs(self, params: dict) -> list[str]:
        return [fill(o.template, params, self.wildcards) for o in STAGES[self.stage].all_outs]

    def args(self) -> list[str]:
        """The CLI options that pick this job: `--task sentiment --model gru --run full`."""
        return [a for w in STAGES[self.stage].wildcards for a in (f"--{w}", str(self.wildcards[w]))]


def jobs(params: dict, stage: str | None = None) -> list[Job]:
    """Every job params declare, in pipeline order (of one stage when named)."""
    found = []
    for s in STAGES.values() if stage is None else [STAGES[stage]]:
        if s.runs:
            found += [Job(s.name, {"task": r.task, "model": r.model, "run": r.name}) for r in runs(params)]
        else:
            names = [names_of(params, w) for w in s.wildcards]
            found += [Job(s.name, dict(zip(s.wildcards, values))) for values in itertools.product(*names)]
    return found


def names_of(params: dict, wildcard: str) -> list[str]:
    """The values a wildcard takes, as they appear in paths: a mapping's names, a list's items."""
    return [str(name) for name in lookup(params, COLLECTIONS[wildcard])]


def _unbound(template: str, wildcards) -> list[str]:
    """The wildcards of a template (its params references aside) that are not among `wildcards`."""
    return [w for w in dict.fromkeys(re.findall(r"\{(\w+)\}", _REF.sub("", template))) if w not in wildcards]


def _filled(template: str, params: dict, wildcards: dict) -> list[str]:
    """A template filled for a job; a wildcard the job does not have (a fine-tuning run reads the LM
    of every pretraining seed) expands over every value it takes."""
    free = _unbound(template, wildcards)
    return [fill(template, params, {**wildcards, **dict(zip(free, values))})
            for values in itertools.product(*(names_of(params, w) for w in free))]


def _kind_extras(stage: str, kind: RunKind) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(inputs, params) a kind of run adds to a stage: fine-tuning reads the model the kind starts
    from (task-adapted or general) and the params its methods and training sections read."""
    return (kind.inputs, kind.params) if stage == "finetune" else ((), ())


def inputs(params: dict, job: Job) -> list[str]:
    """The files a job reads: earlier stages' outputs (or, for the report, their results)."""
    stage = STAGES[job.stage]
    extra = _kind_extras(job.stage, RUN_KINDS[job.run.kind])[0] if stage.runs else ()
    found = [path for t in (*stage.inputs, *extra) for path in _filled(t, params, job.wildcards)]
    for upstream in stage.reads_results_of:
        results = [o.template for o in STAGES[upstream].outs if not o.cache]
        found += [fill(t, params, j.wildcards) for j in jobs(params, upstream) for t in results]
    if stage.reads_results_of:
        found += [str(paths.timing(j.stage, j.name)) for j in jobs(params) if STAGES[j.stage].timed]
    return found


def code(params: dict, job: Job) -> list[str]:
    """The source files a job's command runs: its stage's (code_deps) and the job's own (Stage.code)."""
    return code_deps(job.stage) + [fill(t, params, job.wildcards) for t in STAGES[job.stage].code]


def key_templates(stage: Stage, kind: RunKind | None) -> list[str]:
    """The params keys a stage's jobs (of a kind of run) read, wildcards left in."""
    extra = _kind_extras(stage.name, kind)[1] if kind is not None else ()
    return list(dict.fromkeys([*stage.params, *extra]))


def kind_of(job: Job) -> RunKind | None:
    return RUN_KINDS[job.run.kind] if STAGES[job.stage].runs else None


def declared(job: Job) -> list[str]:
    """The params keys a job reads, as the table declares them: changing one reruns it, in both
    front ends, and the stage sees no other (declared.py)."""
    return [k.format(**job.wildcards) for k in key_templates(STAGES[job.stage], kind_of(job))]


def tracked_keys(params: dict) -> list[str]:
    """Every params key dvc.yaml names (which DVC refuses a params file to lack): the ones its
    foreach and matrix stages expand over and its paths name, and those some job reads."""
    structure = [*COLLECTIONS.values(), *(key for kind in RUN_KINDS.values() for key in kind.matrix.values())]
    structure += [ref for s in STAGES.values() for t in (*s.inputs, *(o.template for o in s.outs))
                  for ref in _REF.findall(t) if "{" not in ref]
    read = [key for job in jobs(params) for key in declared(job)]
    return list(dict.fromkeys([*structure, *read]))


DEFAULTS = schema.DEFAULTS_FILE.relative_to(SRC.parent).as_posix()  # as both front ends name it


def default_keys(stage: Stage, kind: RunKind | None = None) -> list[str]:
    """The paths in the schema's defaults file that can set what a stage's jobs (of a kind of run)
    read (schema.default_paths)."""
    return list(dict.fromkeys(p for key in key_templates(stage, kind) for p in schema.default_paths(key)))


def tracked(raw: dict, job: Job) -> dict:
    """What DVC compares to decide whether a job is stale, as Snakemake's params of its rule: the
    values of its keys as params.yaml holds them, and the schema defaults that can fill them (a
    settings job: what it writes)."""
    stage = STAGES[job.stage]
    if stage.settings_of:
        return settings(raw, job)
    defaults = schema.defaults()
    return {**{k: lookup(raw, k) for k in declared(job)},
            **{f"{DEFAULTS}:{p}": lookup(defaults, p) for p in default_keys(STAGES[job.stage], kind_of(job))}}


def settings(raw: dict, job: Job) -> dict:
    """What a settings job writes, its model's training layers, defaults filled: Snakemake reruns it
    when they change (DVC, whenever the sections it tracks do), so that neither reruns the runs of a
    model whose layers stayed the same, as a shared value its override pins changed."""
    filled = copy.deepcopy(raw)
    schema.check(filled, "params.yaml")
    return model_layers(filled, STAGES[job.stage].settings_of, job.wildcards["model"])


def snakemake_command(stage: str) -> str:
    """The rule's shell command: the stage's CLI call, its log, a training job's threads for torch,
    and the console for a training job's progress line and any job's warnings (scratchlm.console:
    fd 3 is the console's stderr)."""
    s = STAGES[stage]
    cmd = f"python -m scratchlm {stage}" + "".join(f" --{w} {{wildcards.{w}}}" for w in s.wildcards)
    threads = "OMP_NUM_THREADS={threads} " if s.training else ""
    return f"{console.FD_ENV}=3 {threads}{cmd} 3>&2 > {{log}} 2>&1"


JOB_BLOCKS_ENV = "SCRATCHLM_JOB_BLOCKS"  # =1: Snakemake's own block per job instead of the messages


def snakemake_message(stage: str) -> str:
    """The rule's line on the console, in place of Snakemake's block of every input and output
    (the report's lists hundreds): the job, and where its output goes. frontends.planned reads it."""
    job = job_template(STAGES[stage].wildcards, {w: f"{{wildcards.{w}}}" for w in STAGES[stage].wildcards})
    return f"{stage}{' ' + job if job else ''} (log: {{log}})"


def job_of_message(message: str) -> Job | None:
    """The job a snakemake_message names, or None for another line."""
    m = re.fullmatch(r"(\w+)(?: (\S+))? \(log: \S+\)", message.strip())
    if not m or m[1] not in STAGES:
        return None
    values = m[2].split("/") if m[2] else []
    if len(values) != len(STAGES[m[1]].wildcards):
        return None
    prefixes = [JOB_PARTS.get(w, "{%s}" % w).split("{")[0] for w in STAGES[m[1]].wildcards]
    return Job(m[1], {w: v.removeprefix(p) for w, v, p in zip(STAGES[m[1]].wildcards, values, prefixes)})


def log_template(stage: str) -> str:
    return str(paths.log(stage, job_template(STAGES[stage].wildcards)))


# how a wildcard's value reads in a job name (and its timing and log paths): `gru/seed42`, not `gru/42`
JOB_PARTS = {"seed": "seed{seed}"}


def job_template(wildcards: tuple[str, ...], values: dict | None = None) -> str | None:
    """A job's name from its wildcards (`{model}/seed{seed}`), filled with `values` when given;
    None for a stage run once."""
    parts = [JOB_PARTS.get(w, "{%s}" % w) for w in wildcards]
    text = "/".join(parts) or None
    return text if values is None or text is None else text.format(**values)


# ---------------------------------------------------------------- code dependencies

def _module_file(module: str) -> Path | None:
    """scratchlm.a.b -> its file (a module, or a package's __init__.py); None outside the package."""
    parts = module.split(".")
    if parts[0] != PACKAGE.name:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(file: Path) -> str:
    rel = file.relative_to(SRC).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _executed(module: str) -> set[Path]:
    """The package's files that importing `module` runs: a.b.c runs a/__init__, a/b/__init__, a/b/c."""
    parts = module.split(".")
    return {f for i in range(1, len(parts) + 1) if (f := _module_file(".".join(parts[:i]))) is not None}


def _imported(file: Path) -> set[Path]:
    """The package's files that the imports in `file` run (at any depth in the file)."""
    here = _module_name(file)
    package = here if file.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # submodules imported by name
    return set().union(*map(_executed, found)) if found else set()


@functools.cache
def _closure(module: str) -> frozenset[Path]:
    seen, todo = set(), list(_executed(module))
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo += _imported(f) - seen
    return frozenset(seen)


def code_deps(stage: str) -> list[str]:
    """The package's source files a stage's command executes, from the import graph: the CLI
    (`python -m scratchlm`) and what it imports, the stage's module and what it imports."""
    files = _closure(f"{PACKAGE.name}.__main__") | _closure(f"{PACKAGE.name}.stages.{stage}")
    return sorted(f.relative_to(SRC.parent).as_posix() for f in files)


# ---------------------------------------------------------------- dvc.yaml

HEADER = """\
# scratchlm: the pipeline as DVC stages. GENERATED from the stage table in src/scratchlm/dag.py by
# `scratchlm dag --write`: edit the table, not this file (tests/unit/test_dag.py checks they agree).
# foreach/matrix expand over the names in params.yaml; each stage lists only the params it reads and
# the package files its command imports, so a fine-tuning knob never reruns pretraining.
"""


def _dvc_expr(template: str, stage: Stage, kind: RunKind | None) -> str:
    """A template in DVC's interpolation: wildcards become ${key} (foreach) or ${item.x} (matrix)."""
    def ref(m: re.Match) -> str:
        dotted = m.group(1)
        if stage.foreach and dotted.startswith(f"{stage.foreach}.{{{stage.wildcards[0]}}}."):
            return "${item." + dotted.rsplit(".", 1)[1] + "}"
        return "${" + dotted + "}"

    text = _REF.sub(ref, template)
    if kind is not None:
        text = text.replace("{run}", kind.name)
    if stage.foreach:
        return text.replace(f"{{{stage.wildcards[0]}}}", "${key}")
    return re.sub(r"\{(\w+)\}", r"${item.\1}", text)


def _bound_part(template: str, dims) -> str:
    """For DVC, which cannot expand a list inside a matrix entry: a template with a wildcard the
    stage's jobs do not have, cut to the folder above it (a fine-tuning run depends on
    models/adapt/<task>/<model>, the LMs of every pretraining seed; Snakemake lists each)."""
    free = _unbound(template, dims)
    return template if not free else template[:template.index("{" + free[0] + "}")].rsplit("/", 1)[0]


def _dvc_out(out: Out, stage: Stage, kind: RunKind | None) -> dict | str:
    path = _dvc_expr(out.template, stage, kind)
    opts: dict = {**({} if out.cache else {"cache": False}), **({"persist": True} if out.persist else {}),
                  **dict(out.plot)}
    return {path: opts} if opts else path


def _dvc_stage(stage: Stage, kind: RunKind | None = None) -> dict:
    wildcards = stage.wildcards
    cmd = f"python -m scratchlm {stage.name}" + "".join(f" --{w} {{{w}}}" for w in wildcards)
    extra_inputs = _kind_extras(stage.name, kind)[0] if kind is not None else ()
    dims = (*kind.matrix, "run") if kind is not None else wildcards
    deps = (code_deps(stage.name) + [_dvc_expr(_bound_part(t, dims), stage, kind)
                                     for t in (*stage.code, *stage.inputs, *extra_inputs)] + _result_folders(stage))
    params: list = [_dvc_expr(p, stage, kind) for p in key_templates(stage, kind)]
    if default_keys(stage, kind):
        params.append({DEFAULTS: default_keys(stage, kind)})
    body: dict = {"cmd": _dvc_expr(cmd, stage, kind), "deps": deps, "params": params}
    for section, roles in (("outs", ("out",)), ("metrics", ("metric",)), ("plots", ("plot",))):
        entries = [_dvc_out(o, stage, kind) for o in stage.all_outs if o.role in roles]
        if entries:
            body[section] = entries
    if kind is not None:
        return {"matrix": {dim: "${" + key + "}" for dim, key in kind.matrix.items()}, **body}
    if stage.foreach:
        return {"foreach": "${" + stage.foreach + "}", "do": body}
    if wildcards:
        return {"matrix": {w: "${" + COLLECTIONS[w] + "}" for w in wildcards}, **body}
    return body


def _result_folders(stage: Stage) -> list[str]:
    """The report's inputs as DVC sees them: the results/ folders (or files) its upstream outputs
    and the timing files are in; Snakemake lists the files themselves."""
    if not stage.reads_results_of:
        return []
    templates = [o.template for s in stage.reads_results_of for o in STAGES[s].outs if not o.cache]
    templates.append(paths.TIMING + "/{stage}")
    roots = sorted({t.split("{")[0].rstrip("/") for t in templates})
    return [r for r in roots if not any(r.startswith(other + "/") for other in roots)]


def dvc_yaml() -> str:
    """dvc.yaml as generated from the table."""
    import yaml

    stages = {}
    for stage in STAGES.values():
        if stage.runs:
            for suffix, kind in RUN_KINDS.items():
                stages[stage.name + suffix] = _dvc_stage(stage, kind)
        else:
            stages[stage.name] = _dvc_stage(stage)
    text = yaml.safe_dump({"stages": stages}, sort_keys=False, width=120, default_flow_style=False)
    return HEADER + re.sub(r"\n  (\w+):\n", r"\n\n  \1:\n", text)
