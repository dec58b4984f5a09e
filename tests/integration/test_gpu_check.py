"""The prepared GPU check (benchmarks/gpu_check.py) on the CPU at tiny sizes, over stand-in files
in ../shared/data's layout (our synthetic text written as CoNLL columns, GLUE TSV and IMDB JSON
Lines), so the script that runs on a lent GPU cannot rot. Marked slow: it trains every model."""

import gzip
import json
import sys

import pytest

from conftest import HUNG_AFTER_S, ROOT, run
from scratchlm.sources import synthetic

pytestmark = pytest.mark.slow


def _conll(path, rows) -> None:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for i, row in enumerate(rows):
        if i and i % 20 == 0:
            lines += ["-DOCSTART- -X- -X- O", ""]
        lines += [f"{token} NN O {synthetic.NER_TAGS[tag]}" for token, tag in zip(row["tokens"], row["ner_tags"])]
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def stand_in_data(root):
    """The layout of ../shared/data, with no test files (as there): train and validation only."""
    for folder in ("conll2003", "sst2", "imdb"):
        (root / folder).mkdir(parents=True)
    pools = synthetic.entity_pools(1, 60)
    _conll(root / "conll2003/train.txt", synthetic.ner_examples(2, 200, pools, "train"))
    _conll(root / "conll2003/valid.txt", synthetic.ner_examples(3, 60, pools, "validation"))
    for name, seed, n in (("train.tsv", 4, 300), ("dev.tsv", 5, 60)):
        rows = synthetic.sentiment_examples(seed, n)
        (root / "sst2" / name).write_text("sentence\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows))
    (root / "imdb/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic.sentiment_examples(6, 300)))
    with gzip.open(root / "imdb/unsup.jsonl.gz", "wt") as f:
        f.writelines(json.dumps({"text": r["text"], "label": -1}) + "\n" for r in synthetic.corpus_examples(7, 400))
    return root


def test_the_gpu_check_runs_every_stage_and_reports_what_it_measured(tmp_path):
    data = stand_in_data(tmp_path / "data")
    out = tmp_path / "run.json"
    run([sys.executable, "-m", "benchmarks.gpu_check", "--tiny", "--device", "cpu", "--data", str(data), "--out",
         str(out), "--jobs", "2", "--deadline-s", str(HUNG_AFTER_S), "--pretrain-budget-s", "0.001"], ROOT)
    report = json.loads(out.read_text())
    assert report["device"]["name"] == "cpu" and report["check"] == "tiny (CI)"
    for stage, figures in report["stages"].items():
        assert figures["failed"] == [] and figures["skipped"] == [], (stage, figures)
    assert report["stages"]["finetune+evaluate"]["jobs"] == 3 * 2 * 2  # tasks x models x (full, scratch)
    for name, budget in report["pretraining_budget"].items():  # a budget too short for the preset's steps
        assert budget["steps"] == 1 < budget["preset_steps"], name
        assert report["language_models"][name]["steps"] == 1, name
    assert set(report["language_models"]) == {"gru", "bert"}  # the tiny check's: one of each family
    for name, lm in report["language_models"].items():
        assert lm["val_perplexity"] > 1 and lm["pipeline_tokens_per_second"] > 0, name
        step = lm["step_benchmark"]
        assert step["tokens_per_second"] > 0 and 0 <= step["mfu"] < 1 and step["flops_per_token"] > 0, name
    for task in ("conll2003", "sst2", "imdb"):
        t = report["tasks"][task]
        assert t["literature"] and t["split"], task
        for model, arms in t["models"].items():
            assert arms["full"]["n"] == arms["scratch"]["n"] == arms["gain"]["n"] == 2, (task, model)
    assert report["held_out_splits"]["conll2003"].startswith("its validation file")
    assert report["held_out_splits"]["imdb"] == "10% carved from its training file"
