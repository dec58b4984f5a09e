"""Stage `evaluate`: the only reader of the test split. Predicts with a fine-tuned model and writes
scalar metrics (results/metrics/<task>/<model>/<run>.json: what `dvc metrics diff` and
`dvc exp show` compare), the per-class, per-type and per-tag reports (results/details/...json),
one JSON line per test example (results/predictions/...jsonl) so any metric can be recomputed,
and the rows of the confusion matrix plot (results/plots/confusion/...json): classes, or for NER
the words' tags."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from datasets import load_from_disk
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
)

from .. import metrics, paths
from ..atomic import atomic_path, read_json, upstream, write_json
from ..devices import pick_device
from ..kinds import TASK_METRICS
from ..models import RecurrentConfig, auto_class
from ..prompting import Prompt, probabilities
from ..tokenization import by_length, label_names, load


def predict(model, dataset, collator, batch_size: int) -> list:
    """Class probabilities per row, in order; a plain loop (no Trainer) with a progress bar,
    batches of rows of similar length."""
    model.eval()
    order, inverse = by_length(dataset["length"])
    loader = DataLoader(dataset.select(order).with_format(columns=["input_ids"]), batch_size=batch_size,
                        collate_fn=collator)
    rows = []
    with torch.no_grad():
        for batch in tqdm(loader, desc="predict", mininterval=5):
            rows += list(model(**{k: v.to(model.device) for k, v in batch.items()}).logits.float().softmax(-1).cpu()
                         .numpy())
    return [rows[i] for i in inverse]


def predict_tags(model, dataset, collator, batch_size: int) -> list:
    """The tag id of every position of each row (its own length): the model's decoding (Viterbi's
    under a CRF head) of the data's words, which the labelled positions mark; argmax elsewhere.
    Batches of rows of similar length, as `predict`."""
    model.eval()
    order, inverse = by_length(dataset["length"])
    loader = DataLoader(dataset.select(order).with_format(columns=["input_ids", "labels"]), batch_size=batch_size,
                        collate_fn=collator)
    rows = []
    with torch.no_grad():
        for batch in tqdm(loader, desc="predict", mininterval=5):
            ids, mask = batch["input_ids"].to(model.device), batch["attention_mask"].to(model.device)
            if hasattr(model, "decode"):
                tags = model.decode(ids, mask, starts=batch["labels"].to(model.device) != -100)
            else:  # transformers' own token classifiers
                tags = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
            rows += [row[:n].tolist() for row, n in zip(tags.cpu(), mask.sum(1).tolist())]
    return [rows[i] for i in inverse]


def word_predictions(tags: list[int], labels: list[int], n_words: int) -> list[int]:
    """A word's prediction is its first sub-token's (the positions encode labelled); words cut off
    by truncation are predicted O (id 0), so they count as misses, not as absent."""
    firsts = [max(int(t), 0) for t, label in zip(tags, labels) if label != -100]
    return firsts + [0] * (n_words - len(firsts))


def _sequence(test, probs, names: list[str]) -> tuple[dict, list[str], list[dict]]:
    y_true, y_pred = list(test["labels"]), [int(p.argmax()) for p in probs]
    scores = metrics.classification(y_true, y_pred, names)
    lines = [json.dumps({"index": i, "label": t, "prediction": p, "probabilities": [round(float(x), 5) for x in row]})
             for i, (t, p, row) in enumerate(zip(y_true, y_pred, probs))]
    confusion = [{"actual": names[t], "predicted": names[p]} for t, p in zip(y_true, y_pred)]
    return scores, lines, confusion


def _tokens(test, tags, names: list[str]) -> tuple[dict, list[str], list[dict]]:
    true, pred, lines = [], [], []
    for i, (row, t) in enumerate(zip(test.select_columns(["words", "word_tags", "labels"]), tags)):
        predicted = word_predictions(t, row["labels"], len(row["words"]))
        true.append([names[t] for t in row["word_tags"]])
        pred.append([names[t] for t in predicted])
        lines.append(json.dumps({"index": i, "words": row["words"], "tags": true[-1], "predicted": pred[-1]}))
    scores = metrics.entities(true, pred)
    confusion = [{"actual": t, "predicted": p} for ts, ps in zip(true, pred) for t, p in zip(ts, ps)]
    return scores, lines, confusion


def _one_seed(folder: Path, test, task_type: str, params: dict) -> tuple[dict, list[str], list[dict]]:
    batch = params["evaluate"]["batch_size"]
    config = AutoConfig.from_pretrained(folder)
    if getattr(config, "prompt", None):  # prompt, pet: the language model scores the verbalizers
        causal = config.model_type == RecurrentConfig.model_type
        lm = (AutoModelForCausalLM if causal else AutoModelForMaskedLM).from_pretrained(folder)
        tok = load(folder)
        spec = config.prompt
        prompt = Prompt.build(tok, spec["template"], spec["verbalizers"], spec["labels"])
        probs = probabilities(lm.to(pick_device(params["device"])), tok, prompt, list(test["input_ids"]), causal, batch,
                              spec["calibrate"])
        return _sequence(test, probs, label_names(test))
    net = auto_class(task_type).from_pretrained(folder).to(pick_device(params["device"]))
    sequence = task_type == "sequence-classification"
    if sequence:
        return _sequence(test, predict(net, test, DataCollatorWithPadding(load(folder)), batch), label_names(test))
    tags = predict_tags(net, test, DataCollatorForTokenClassification(load(folder)), batch)
    return _tokens(test, tags, label_names(test))


COLLAPSE_SHARE = 0.95  # the share of the test examples given one class from which a run counts as collapsed


def collapsed(lines: list[str]) -> bool:
    """Whether a run's predictions ignore their input, whatever its accuracy: one class for all or
    nearly all examples (NER: no entity at all). Nearly all: at least COLLAPSE_SHARE of them, and at
    least half way from that class's share of the labels to all of them, so that a good run on a
    skewed test set is not flagged. A run at chance whose scores barely vary with the text gives
    one class to 98% of the examples rather than all (the demo's zero-shot prompt under
    content-free calibration did)."""
    rows = [json.loads(line) for line in lines]
    if "prediction" in rows[0]:
        cls, count = Counter(r["prediction"] for r in rows).most_common(1)[0]
        share, truth = count / len(rows), sum(r["label"] == cls for r in rows) / len(rows)
        return share >= max(COLLAPSE_SHARE, (1 + truth) / 2)
    return all(tag == "O" for r in rows for tag in r["predicted"])


def run(params: dict, task: str, model: str, run: str) -> None:
    task_type = params["tasks"][task]["type"]
    where = {"task": task, "model": model, "run": run}
    folder = Path(upstream(paths.path(paths.FINETUNED, **where),
                           f"finetune --task {task} --model {model} --run {run}"))
    test = load_from_disk(upstream(paths.path(paths.ENCODED, task=task), f"encode --task {task}"))["test"]
    per_seed, lines, confusion = {}, [], []
    for seed in params["finetune"]["seeds"]:
        scores, seed_lines, seed_confusion = _one_seed(folder / f"seed{seed}", test, task_type, params)
        per_seed[seed] = {**scores, "collapsed": collapsed(seed_lines)}
        lines += [json.dumps({"seed": seed, **json.loads(line)}) for line in seed_lines]
        confusion += seed_confusion

    trained = read_json(paths.path(paths.FINETUNE_METRICS, **where))
    result = {}
    for name in TASK_METRICS[task_type]:
        mean, std = metrics.mean_std([s[name] for s in per_seed.values()])
        result[name], result[f"{name}_std"] = round(mean, 6), round(std, 6)
    result.update(seeds=len(per_seed), collapsed_seeds=sum(s["collapsed"] for s in per_seed.values()),
                  improving_seeds=trained["improving_seeds"], test_examples=len(test),
                  train_examples=trained["train_examples"], lr=trained["lr"],
                  selected_epoch=trained["selected_epoch"],
                  trainable_fraction=trained["trainable_fraction"])
    write_json(paths.path(paths.METRICS, **where), result)
    write_json(paths.path(paths.DETAILS, **where), {
        "parameters": trained["parameters"], "trainable_parameters": trained["trainable_parameters"],
        "seeds": {str(seed): scores for seed, scores in per_seed.items()}})
    with atomic_path(paths.path(paths.PREDICTIONS, **where)) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    write_json(paths.path(paths.CONFUSION, **where), confusion)
    main = TASK_METRICS[task_type][0]
    flag = f" ({result['collapsed_seeds']} of {len(per_seed)} seeds collapsed)" if result["collapsed_seeds"] else ""
    print(f"evaluate: {task}/{model}/{run}: test {main} {result[main]:.4f} ± {result[main + '_std']:.4f}{flag}")
