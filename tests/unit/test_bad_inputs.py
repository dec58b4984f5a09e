"""Bad inputs, as a user meets them: each case breaks params.yaml or an input file and runs the real
CLI in a temp folder. Every one must end with exit status 1 and exactly one line on stderr,
`scratchlm: error: <params.yaml or file[:line] or key>: ... <the fix>`, no traceback, and no file
written (no stage output, no temp sibling) that a later stage would read.

The whole corpus runs in-process through `cli.main` (fast); a few cases also run as
`python -m scratchlm` subprocesses, to show the exit status and stderr end to end."""

from __future__ import annotations

import copy
import datetime
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import DEFAULT_PARAMS, HUNG_AFTER_S, env
from scratchlm import cli
from scratchlm.params import read_yaml

BASE = read_yaml(DEFAULT_PARAMS)
DATA = ["data", "--dataset", "sentiment"]
LOCAL = ["data", "--dataset", "x"]
FINETUNE = ["finetune", "--task", "sentiment", "--model", "gru", "--run", "full"]
# the start of every message: the params file (with its line), an input file (with its line), or a key
PLACE = re.compile(r"^scratchlm: error: (params\.yaml(:\d+)?[: ]|data/external/\S+?(:\d+)?: |data\.datasets\.x\.|"
                   r"(data|models)/\S+: )")
# ... and a fix: what is allowed or declared, what to set, add, remove, correct or save instead
FIX = re.compile(r"allowed|did you mean|declared|expected|\bset\b|add it|\buse\b|remove|save the file|keep one|"
                 r"give at least|correct|map it|put it|run from|must (be|divide)|need|fix the|not listed|raise|"
                 r"what its extension says|one file per split|run `scratchlm|add rows|give a|put the file|lower")


# ---------------------------------------------------------------- how a case breaks its inputs

def _node(p: dict, dotted: str) -> tuple[dict, str]:
    *parents, last = dotted.split(".")
    for part in parents:
        p = p[part]
    return p, last


def put(dotted: str, value):
    """params.yaml with `dotted` set to `value`."""
    def mutate(p):
        node, last = _node(p, dotted)
        node[last] = value
    return mutate


def drop(dotted: str):
    def mutate(p):
        node, last = _node(p, dotted)
        del node[last]
    return mutate


def rename(dotted: str, new: str):
    """A misspelt key: the same value under another name."""
    def mutate(p):
        node, last = _node(p, dotted)
        node[new] = node.pop(last)
    return mutate


def params(*mutations):
    def setup(d: Path):
        p = copy.deepcopy(BASE)
        for mutate in mutations:
            mutate(p)
        (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False), encoding="utf-8")
    return setup


# a corpus small enough to run data and tokenizer in a test's set-up
SMALL_CORPUS = (put("data.datasets.corpus.train", 200), put("data.datasets.corpus.validation", 1),
                put("data.datasets.corpus.test", 20), put("tokenizer.vocab_size", 300))


def ran(setup, *argvs):
    """A set-up, then the stage commands that make a later stage's inputs."""
    def run_them(d: Path):
        setup(d)
        for argv in argvs:
            assert cli.main(argv) == 0, argv
    return run_them


def params_text(content: bytes):
    def setup(d: Path):
        (d / "params.yaml").write_bytes(content)
    return setup


def dataset(spec: dict, files: dict[str, bytes | str] | None = None):
    """params.yaml declaring dataset `x` = spec, and files under data/external/ (name: content)."""
    def setup(d: Path):
        params(put("data.datasets.x", spec))(d)
        for name, content in (files or {}).items():
            path = d / "data" / "external" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
    return setup


def local(kind: str, train: str, **fields) -> dict:
    return {"source": "local", "kind": kind, "files": {"train": f"data/external/{train}"}, **fields}


def no_params(d: Path):
    pass


CLS = "text,label\n" + "a fine film,pos\nan awful film,neg\n" * 5
CONLL = "EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n"

CASES = [
    # ------------------------------------------------ params: wrong types
    ("type-lr-string", params(put("finetune.training.lr", "fast")), FINETUNE,
     ['finetune.training.lr = "fast"', "a string, expected a number"]),
    ("type-seed-list", params(put("seed", [1, 2])), DATA, ["seed = [1, 2]", "expected an integer"]),
    ("type-bool-as-int", params(put("pretrain.models.gru.tie_embeddings", 1)), ["pretrain", "--model", "gru"],
     ["pretrain.models.gru.tie_embeddings = 1", "expected true or false"]),
    ("type-section-is-string", params(put("tokenizer", "corpus")), ["tokenizer"],
     ['tokenizer = "corpus"', "a string, expected a mapping"]),
    ("type-revision-is-a-date", dataset({"source": "hub", "kind": "corpus", "path": "x/y",
                                         "revision": datetime.date(2024, 1, 31)}), LOCAL,
     ['data.datasets.x.revision = "2024-01-31"', "a date (quote it for a string), expected a string"]),
    # ------------------------------------------------ params: negative or zero rates and sizes
    ("negative-lr", params(put("pretrain.training.lr", -0.001)), ["pretrain", "--model", "gru"],
     ["pretrain.training.lr = -0.001", "allowed: > 0 and <= 1"]),
    ("zero-lr", params(put("finetune.training.lr", 0)), FINETUNE, ["finetune.training.lr = 0", "allowed: > 0"]),
    ("zero-epochs", params(put("finetune.training.epochs", 0)), FINETUNE,
     ["finetune.training.epochs = 0", "allowed: > 0"]),
    ("zero-batch-size", params(put("finetune.training.batch_size", 0)), FINETUNE,
     ["finetune.training.batch_size = 0", "allowed: >= 1"]),
    ("zero-batch-size-in-override", params(put("finetune.overrides.gru", {"batch_size": 0})), FINETUNE,
     ["finetune.overrides.gru.batch_size = 0", "allowed: >= 1"]),
    ("negative-eval-batch-size", params(put("evaluate.batch_size", -8)), DATA,
     ["evaluate.batch_size = -8", "allowed: >= 1"]),
    ("dropout-one", params(put("pretrain.models.gru.dropout", 1.0)), ["pretrain", "--model", "gru"],
     ["pretrain.models.gru.dropout = 1.0", "allowed: >= 0 and < 1"]),
    ("label-noise-above-one", params(put("data.datasets.sentiment.label_noise", 1.5)), DATA,
     ["data.datasets.sentiment.label_noise = 1.5", "allowed: >= 0 and <= 1"]),
    # ------------------------------------------------ params: unknown task, model, method, dataset names
    ("cli-unknown-task", params(), ["encode", "--task", "sentimnt"],
     ["tasks has no 'sentimnt'", "declared: sentiment, ner"]),
    ("cli-unknown-model", params(), ["pretrain", "--model", "gpt2"],
     ["pretrain.models has no 'gpt2'", "declared: gru"]),
    ("cli-undeclared-lm-seed", params(), ["pretrain", "--model", "gru", "--seed", "7"],
     ["pretrain.seeds has no '7'", "declared: 42"]),
    ("cli-lm-seed-left-out-of-several", params(put("pretrain.seeds", [1, 2])), ["adapt", "--task", "ner", "--model",
                                                                                "gru"],
     ["pretrain.seeds lists 2: name one with --seed (declared: 1, 2)"]),
    ("cli-unknown-dataset", params(), ["data", "--dataset", "imdb"], ["data.datasets has no 'imdb'", "declared:"]),
    ("cli-undeclared-method", params(), ["finetune", "--task", "ner", "--model", "gru", "--run", "lora"],
     ["no fine-tuning run 'lora' of gru on ner", "declared: full", "see finetune.methods"]),
    ("cli-fraction-above-one", params(), ["finetune", "--task", "sentiment", "--model", "gru", "--run", "full-1.5"],
     ["no fine-tuning run 'full-1.5'", "declared:"]),
    ("slanted-triangle-replacing-cosine", params(put("finetune.training.scheduler", "cosine"),
                                                 put("finetune.ulmfit.slanted_triangular", True)), FINETUNE,
     ["finetune.training.scheduler = 'cosine'", "slanted_triangular = true replaces it", "set one of them"]),
    ("unknown-task-type", params(put("tasks.sentiment.type", "classification")), DATA,
     ["tasks.sentiment.type = 'classification'", "allowed: sequence-classification, token-classification"]),
    ("unknown-arch", params(put("pretrain.models.gru.arch", "transformer")), DATA,
     ["pretrain.models.gru.arch = 'transformer'", "allowed: recurrent, bert"]),
    ("unknown-method", params(put("finetune.methods", ["full", "lora"])), FINETUNE,
     ["finetune.methods.1 = 'lora'", "allowed: full, frozen, scratch"]),
    ("unknown-generator", params(put("data.datasets.sentiment.generator", "sentimnt")), DATA,
     ["data.datasets.sentiment.generator = 'sentimnt'", "did you mean 'sentiment'?"]),
    ("task-names-no-dataset", params(put("tasks.ner.dataset", "conll")), DATA,
     ["tasks.ner.dataset = 'conll' names no dataset", "declared: sentiment, ner, corpus"]),
    ("lora-names-no-model", params(put("finetune.lora.models", ["brt"])), DATA,
     ["finetune.lora.models has 'brt', which names no model", "declared: gru"]),
    # ------------------------------------------------ params: misspelt keys, at every level
    ("misspelt-top-level", params(rename("finetune", "fintune")), DATA,
     ["(top level): unknown key 'fintune' (did you mean 'finetune'?)", "allowed keys:"]),
    ("misspelt-training-key", params(rename("finetune.training.batch_size", "batchsize")), FINETUNE,
     ["finetune.training: unknown key 'batchsize' (did you mean 'batch_size'?)"]),
    ("misspelt-model-key", params(rename("pretrain.models.gru.hidden_size", "hiden_size")), DATA,
     ["pretrain.models.gru: unknown key 'hiden_size' (did you mean 'hidden_size'?)"]),
    ("misspelt-dataset-key", params(rename("data.datasets.sentiment.label_noise", "label_nois")), DATA,
     ["data.datasets.sentiment: unknown key 'label_nois' (did you mean 'label_noise'?)"]),
    ("misspelt-override-key", params(put("pretrain.models.bert", {"arch": "bert", "training": {"epoch": 5}})), DATA,
     ["pretrain.models.bert.training: unknown key 'epoch' (did you mean 'epochs'?)"]),
    ("misspelt-required-key", params(rename("pretrain.models.gru.arch", "arc")), DATA,
     ["pretrain.models.gru: unknown key 'arc' (did you mean 'arch'?); arch is required"]),
    ("misspelt-split", dataset({**local("classification", "a.csv"), "files": {"trian": "data/external/a.csv"}}),
     LOCAL, ["data.datasets.x.files: unknown key 'trian' (did you mean 'train'?)"]),
    # ------------------------------------------------ params: missing sections and keys
    ("missing-tasks", params(drop("tasks")), DATA, ["tasks is missing (required); add it"]),
    ("missing-models", params(drop("pretrain.models")), DATA, ["pretrain.models is missing (required); add it"]),
    ("empty-tasks", params(put("tasks", {})), DATA, ["tasks = {}: empty; give at least 1 entry"]),
    ("empty-pretrain-seeds", params(put("pretrain.seeds", [])), DATA,
     ["pretrain.seeds = []: empty; give at least 1 item"]),
    ("more-lms-than-fine-tuning-seeds", params(put("pretrain.seeds", [1, 2, 3, 4])), DATA,
     ["pretrain.seeds lists 4 LMs per model but finetune.seeds only 3 seeds, so LM 4 would train for nothing",
      "give at least as many fine-tuning seeds, or remove LMs"]),
    ("repeated-pretrain-seed", params(put("pretrain.seeds", [1, 1])), DATA,
     ["pretrain.seeds = [1, 1]: 1 is listed twice; keep one"]),
    ("missing-kind", dataset({"source": "local", "files": {"train": "data/external/a.csv"}}), LOCAL,
     ["data.datasets.x.kind is missing (required); add it (allowed: classification, ner, corpus)"]),
    ("missing-revision", dataset({"source": "hub", "kind": "corpus", "path": "x/y"}), LOCAL,
     ["data.datasets.x.revision is missing (required); add it (pinned commit"]),
    # ------------------------------------------------ params: contradictory settings
    ("lora-on-recurrent-model", params(put("finetune.lora.models", ["gru"])), DATA,
     ["finetune.lora.models has 'gru', a recurrent model", "remove it"]),
    ("fraction-above-one", params(put("finetune.data_efficiency.fractions", [1.5])), DATA,
     ["finetune.data_efficiency.fractions.0 = 1.5", "allowed: > 0 and < 1"]),
    ("fraction-zero", params(put("finetune.data_efficiency.fractions", [0])), DATA,
     ["finetune.data_efficiency.fractions.0 = 0", "allowed: > 0 and < 1"]),
    ("fraction-runs-of-an-undeclared-task", params(put("finetune.data_efficiency.tasks", ["conll"])), DATA,
     ["finetune.data_efficiency.tasks has 'conll', which names no task (declared: sentiment, ner)"]),
    ("metric-of-other-task-type", params(put("tasks.ner.metric", "accuracy")), DATA,
     ["tasks.ner.metric = 'accuracy' does not apply to token-classification", "use entity_f1 or token_accuracy"]),
    ("dataset-of-other-kind", params(put("tasks.sentiment.type", "token-classification")), DATA,
     ["tasks.sentiment.dataset = 'sentiment' is a classification dataset; it must be ner"]),
    ("pretrain-on-labelled-ner", params(put("pretrain.corpus", "ner")), DATA,
     ["pretrain.corpus = 'ner' is a ner dataset; it must be corpus or classification"]),
    ("checkpoint-without-its-tokenizer",
     params(put("pretrain.models.bert", {"arch": "bert", "checkpoint": "bert-base-cased"})), DATA,
     ["pretrain.models.bert.checkpoint = 'bert-base-cased' needs its own vocabulary", "set tokenizer.checkpoint"]),
    ("max-position-below-max-length", params(put("pretrain.models.bert", {"arch": "bert", "max_position": 128}),
                                             put("encode.max_length", 256)), DATA,
     ["pretrain.models.bert.max_position = 128 is shorter than the longest input (256"]),
    ("method-listed-twice", params(put("finetune.methods", ["full", "full"])), DATA,
     ['finetune.methods = ["full", "full"]: "full" is listed twice; keep one']),
    ("conll-file-for-classification", dataset(local("classification", "a.conll")), LOCAL,
     ["data.datasets.x.files.train = 'data/external/a.conll': a conll file cannot hold a classification dataset",
      "correct kind or data.datasets.x.format"]),
    ("csv-file-for-ner", dataset(local("ner", "a.csv")), LOCAL,
     ["a csv file cannot hold a ner dataset", "CoNLL columns, JSON Lines or Parquet"]),
    ("unknown-extension", dataset(local("classification", "a.xlsx")), LOCAL,
     ["data.datasets.x.files.train = 'data/external/a.xlsx': cannot tell the format", "set data.datasets.x.format"]),
    ("benchmark-of-other-kind", dataset(local("ner", "a.conll", benchmark="imdb")), LOCAL,
     ["data.datasets.x.benchmark = 'imdb' is a classification benchmark but kind is 'ner'"]),
    # ------------------------------------------------ the params file itself
    ("params-missing", no_params, DATA, ["params.yaml: file not found; run from the repository root"]),
    ("params-empty", params_text(b""), DATA, ["params.yaml is empty", "data, tokenizer, tasks, pretrain"]),
    ("params-not-yaml", params_text(b"[data]\nseed = 1\n"), DATA, ["params.yaml:2: not valid YAML"]),
    ("params-unclosed-bracket", params_text(b"seed: 1\ndata: {datasets: [x\n"), DATA,
     ["params.yaml:3: not valid YAML", "that starts on line 2"]),
    ("params-not-utf8", params_text(b"seed: 1\n# caf\xe9\n"), DATA,
     ["params.yaml:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"]),
    ("params-key-twice", params_text(DEFAULT_PARAMS.read_bytes() + b"\nseed: 7\n"), DATA,
     ["not valid YAML (key 'seed' is given twice (first on line", "keep one"]),
    # ------------------------------------------------ local files
    ("file-missing", dataset(local("classification", "train.csv")), LOCAL,
     ["data/external/train.csv: file not found; put it there"]),
    ("file-is-a-folder", dataset(local("classification", "train.csv"), {"train.csv/x": ""}), LOCAL,
     ["data/external/train.csv: not a file"]),
    ("csv-empty", dataset(local("classification", "a.csv"), {"a.csv": ""}), LOCAL,
     ["data/external/a.csv: empty file; a header row naming the columns is needed"]),
    ("csv-header-only", dataset(local("classification", "a.csv"), {"a.csv": "text,label\n"}), LOCAL,
     ["data/external/a.csv: no rows in it"]),
    ("conll-empty", dataset(local("ner", "a.conll"), {"a.conll": "\n\n"}), LOCAL,
     ["data/external/a.conll: no rows in it"]),
    ("conll-one-column", dataset(local("ner", "a.conll"), {"a.conll": CONLL + "Smith\n"}), LOCAL,
     ["data/external/a.conll:6: 1 column ('Smith')", "needs the token and its tag"]),
    ("conll-column-count-changes", dataset(local("ner", "a.conll"), {"a.conll": CONLL + "New York B-LOC\n"}), LOCAL,
     ["data/external/a.conll:6: 3 columns where line 1 has 2"]),
    ("conll-no-tag-column", dataset(local("ner", "a.conll", tag_column=3), {"a.conll": CONLL}), LOCAL,
     ["data/external/a.conll:1: 2 column(s), no tag column 3", "set tag_column"]),
    ("conll-tag-not-iob", dataset(local("ner", "a.conll"), {"a.conll": CONLL + "\nParis S-LOC\n"}), LOCAL,
     ["data/external/a.conll:7: tag 'S-LOC' is not O, B-TYPE or I-TYPE", "set tag_column"]),
    ("conll-not-utf8", dataset(local("ner", "a.conll"), {"a.conll": CONLL.encode() + b"\nZ\xfcrich B-LOC\n"}), LOCAL,
     ["data/external/a.conll:7: not UTF-8 text (byte 0xfc)", "save the file as UTF-8"]),
    ("csv-not-utf8", dataset(local("classification", "a.csv"), {"a.csv": CLS.encode() + b"caf\xe9 au lait,pos\n"}),
     LOCAL, ["data/external/a.csv:12: not UTF-8 text (byte 0xe9)"]),
    ("label-out-of-range", dataset(local("classification", "a.csv", label_names=["neg", "pos"]),
                                   {"a.csv": "text,label\nfine,1\nbad,0\nodd,2\n"}), LOCAL,
     ["data/external/a.csv:4: unknown label '2' (classes: neg, pos; set data.datasets.x.label_names)"]),
    ("tag-not-in-label-names", dataset(local("ner", "a.conll", label_names=["O", "B-PER", "I-PER"]),
                                       {"a.conll": CONLL}), LOCAL,
     ["data.datasets.x.label_names: tag 'B-ORG' found in the data is not listed"]),
    ("column-missing", dataset(local("classification", "a.csv"), {"a.csv": CLS.replace("text,", "sentence,", 1)}),
     LOCAL, ["data/external/a.csv:2: no column 'text' (has: sentence, label); map it in data.datasets.x.columns"]),
    ("csv-field-count", dataset(local("classification", "a.csv"), {"a.csv": CLS + "good, really,pos\n"}), LOCAL,
     ["data/external/a.csv:12: 3 fields where the header has 2", "quoting: none"]),
    ("csv-unclosed-quote", dataset(local("classification", "a.csv"), {"a.csv": CLS + '"open,pos\n' + "x" * 140000}),
     LOCAL, ["data/external/a.csv:13: field larger than field limit", "an unclosed quote?"]),
    ("jsonl-broken-line", dataset(local("classification", "a.jsonl"),
                                  {"a.jsonl": '{"text": "a", "label": "x"}\n{"text": "b", "label": \n'}), LOCAL,
     ["data/external/a.jsonl:2: invalid JSON"]),
    ("json-not-a-list", dataset(local("classification", "a.json"), {"a.json": '"text"'}), LOCAL,
     ["data/external/a.json: expected a list of objects"]),
    ("gz-not-gzip", dataset(local("classification", "a.csv.gz"), {"a.csv.gz": CLS}), LOCAL,
     ["data/external/a.csv.gz: cannot read it (BadGzipFile", "is it what its extension says?"]),
    ("parquet-broken", dataset(local("classification", "a.parquet"), {"a.parquet": "not parquet"}), LOCAL,
     ["data/external/a.parquet: not a readable Parquet file"]),
    ("train-too-small-to-carve", dataset(local("classification", "a.csv"), {"a.csv": "text,label\nfine,pos\n"}), LOCAL,
     ["data.datasets.x.files.train: 1 rows are too few to carve validation and test from"]),
    # ------------------------------------------------ values torch would choke on, data that passed silently
    ("nan-learning-rate", params(put("finetune.training.lr", float("nan"))), FINETUNE,
     ["finetune.training.lr = nan: not a finite number", "give a number"]),
    ("inf-in-a-list", params(put("finetune.data_efficiency.fractions", [float("inf")])), DATA,
     ["finetune.data_efficiency.fractions.0 = inf: not a finite number"]),
    ("block-longer-than-the-corpus", ran(params(put("pack.block_size", 512), *SMALL_CORPUS),
                                         ["data", "--dataset", "corpus"], ["tokenizer"]), ["pack"],
     ["pack.block_size = 512 is longer than the whole validation split of 'corpus': not one block",
      "lower pack.block_size"]),
    ("path-leaves-external", dataset(local("classification", "../../../etc/hosts")), LOCAL,
     ["files.train = 'data/external/../../../etc/hosts': leaves data/external/", "put the file under"]),
    ("test-label-absent-from-train", dataset({**local("classification", "a.csv"), "files": {
        "train": "data/external/a.csv", "test": "data/external/b.csv"}},
        {"a.csv": CLS, "b.csv": "text,label\nso-so,neutral\n"}), LOCAL,
     ["data/external/b.csv:2: label 'neutral' of the test split never occurs in train", "add training rows"]),
    ("ner-type-absent-from-train", dataset({**local("ner", "a.conll"), "files": {
        "train": "data/external/a.conll", "validation": "data/external/b.conll"}},
        {"a.conll": CONLL * 10, "b.conll": "Paris B-LOC\n"}), LOCAL,
     ["data/external/b.conll:1: entity type 'LOC' of the validation split never occurs in train"]),
    ("label-names-with-an-unused-name", dataset(local("classification", "a.csv", label_names=["neg", "neutral", "pos"]),
                                                {"a.csv": CLS}), LOCAL,
     ["data.datasets.x.label_names lists 'neutral', which no row has (classes found: neg, pos); remove it"]),
    ("labels-differing-in-case", dataset(local("classification", "a.csv"), {"a.csv": "text,label\n" + "fine,positive\n"
                                          "good,Positive\nbad,negative\nawful,NEGATIVE\n" * 4}), LOCAL,
     ["data/external/a.csv:5: label 'NEGATIVE' differs only in case from 'negative' (data/external/a.csv:4); "
      "fix the file so that each class (data.datasets.x) is spelt one way"]),
    ("fractional-label", dataset(local("classification", "a.jsonl"),
                                 {"a.jsonl": '{"text": "a", "label": 1}\n{"text": "b", "label": 0.5}\n' * 5}), LOCAL,
     ["data/external/a.jsonl:2: label 0.5 is not a class; give a class name or an integer id"]),
    ("corpus-extension-unknown", dataset(local("corpus", "a.md")), LOCAL,
     ["cannot tell the format from the extension", "text: plain text, one document per line or paragraph"]),
    ("tracked-key-missing", params(drop("finetune.overrides")), DATA,
     ["finetune.overrides is missing; DVC tracks it as a stage's param",
      "add it (its default: finetune.overrides: {})"]),
    # ------------------------------------------------ stages run out of order
    ("encode-before-data", params(), ["encode", "--task", "sentiment"],
     ["data/raw/sentiment: not found; run `scratchlm data --dataset sentiment` first"]),
    ("pretrain-before-tokenizer", params(), ["pretrain", "--model", "gru"],
     ["models/tokenizer: not found; run `scratchlm tokenizer` first"]),
    ("evaluate-before-finetune", params(), ["evaluate", "--task", "sentiment", "--model", "gru", "--run", "full"],
     ["models/finetune/sentiment/gru/full: not found; run `scratchlm finetune --task sentiment --model gru "
      "--run full` first"]),
    ("cli-misspelt-task", params(), ["encode", "--task", "sentimnt"], ["did you mean 'sentiment'?"]),
]
SUBPROCESS = ["type-lr-string", "misspelt-top-level", "params-not-utf8", "cli-unknown-task", "conll-one-column",
              "csv-not-utf8"]


def _files(d: Path) -> set[str]:
    """Every file but the job locks (checkpoints/.jobs: scratch space, like the logs)."""
    return {str(p.relative_to(d)) for p in d.rglob("*") if not str(p.relative_to(d)).startswith("checkpoints")}


def _check(stderr: str, expected: list[str]) -> None:
    assert stderr.endswith("\n") and stderr.count("\n") == 1, f"not one line:\n{stderr}"
    assert "Traceback" not in stderr
    assert PLACE.match(stderr), f"names no file or key: {stderr}"
    assert FIX.search(stderr), f"says no fix: {stderr}"
    for part in expected:
        assert part in stderr, stderr


@pytest.mark.parametrize("setup, argv, expected", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_stops_with_one_line_and_writes_nothing(setup, argv, expected, workdir, capsys):
    setup(workdir)
    before = _files(workdir)
    assert cli.main(argv) == 1
    _check(capsys.readouterr().err, expected)
    assert _files(workdir) == before  # no stage output, no temp sibling


@pytest.mark.parametrize("setup, argv, expected", [pytest.param(*c[1:], id=c[0]) for c in CASES if c[0] in SUBPROCESS])
def test_bad_input_end_to_end(setup, argv, expected, tmp_path):
    setup(tmp_path)
    before = _files(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "scratchlm", *argv], cwd=tmp_path, env=env(), capture_output=True,
                          text=True, timeout=HUNG_AFTER_S)
    assert proc.returncode == 1
    _check(proc.stderr, expected)
    assert _files(tmp_path) == before


def test_corpus_is_large_and_named_uniquely():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)
    assert set(SUBPROCESS) <= {c[0] for c in CASES}
