"""Stage `evaluate`: the only reader of the test split. Predicts with a fine-tuned model and writes
scalar metrics (results/metrics/<task>/<model>/<run>.json: what `dvc metrics diff` and
`dvc exp show` compare), the per-class, per-type and per-tag reports (results/details/...json),
one JSON line per test example (results/predictions/...jsonl) so any metric can be recomputed,
and the rows of the confusion matrix plot (results/plots/confusion/...json): classes, or for NER
the words' tags."""

from __future__ import annotations

import json
from pathlib import Path

from .io import atomic_path, read_json, upstream, write_json

OUT = {"metrics": ("results/metrics", ".json"), "details": ("results/details", ".json"),
       "predictions": ("results/predictions", ".jsonl"), "confusion": ("results/plots/confusion", ".json")}
DETAILS = ("per_class", "per_type", "per_tag")  # nested reports, kept out of the scalar metrics


def output(kind: str, task: str, model: str, run: str) -> Path:
    root, suffix = OUT[kind]
    return Path(root) / task / model / f"{run}{suffix}"


def predict(model, dataset, collator, batch_size: int) -> list:
    """Class probabilities per row (sequence tasks: (C,); token tasks: (T, C) over the row's own
    tokens), in order; a plain loop (no Trainer) with a progress bar. Padding makes the mask."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    model.eval()
    loader = DataLoader(dataset.with_format(columns=["input_ids"]), batch_size=batch_size, collate_fn=collator)
    rows = []
    with torch.no_grad():
        for batch in tqdm(loader, desc="predict", mininterval=5):
            probs = model(**{k: v.to(model.device) for k, v in batch.items()}).logits.float().softmax(-1).cpu()
            if probs.dim() == 3:  # token classification: drop each row's padding
                rows += [p[:n].numpy() for p, n in zip(probs, batch["attention_mask"].sum(1).tolist())]
            else:
                rows += list(probs.numpy())
    return rows


def word_predictions(probs, labels: list[int], n_words: int) -> list[int]:
    """A word's prediction is its first sub-token's (the positions tokenize labelled); words cut off
    by truncation are predicted O (id 0), so they count as misses, not as absent."""
    firsts = [int(p.argmax()) for p, label in zip(probs, labels) if label != -100]
    return firsts + [0] * (n_words - len(firsts))


def _sequence(test, probs, names: list[str]) -> tuple[dict, list[str], list[dict]]:
    from . import metrics

    y_true, y_pred = list(test["labels"]), [int(p.argmax()) for p in probs]
    scores = metrics.classification(y_true, y_pred, names)
    lines = [json.dumps({"index": i, "label": t, "prediction": p, "probabilities": [round(float(x), 5) for x in row]})
             for i, (t, p, row) in enumerate(zip(y_true, y_pred, probs))]
    confusion = [{"actual": names[t], "predicted": names[p]} for t, p in zip(y_true, y_pred)]
    return scores, lines, confusion


def _tokens(test, probs, names: list[str]) -> tuple[dict, list[str], list[dict]]:
    from . import metrics

    true, pred, lines = [], [], []
    for i, (row, p) in enumerate(zip(test.select_columns(["words", "word_tags", "labels"]), probs)):
        predicted = word_predictions(p, row["labels"], len(row["words"]))
        true.append([names[t] for t in row["word_tags"]])
        pred.append([names[t] for t in predicted])
        lines.append(json.dumps({"index": i, "words": row["words"], "tags": true[-1], "predicted": pred[-1]}))
    scores = metrics.entities(true, pred)
    confusion = [{"actual": t, "predicted": p} for ts, ps in zip(true, pred) for t, p in zip(ts, ps)]
    return scores, lines, confusion


def run(params: dict, task: str, model: str, method: str, fraction: float = 1.0) -> None:
    from datasets import load_from_disk
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    from . import models  # noqa: F401  (registers the Auto classes)
    from .finetune import auto_class, model_dir, results_dir
    from .tokenize import label_names, tokenized_dir
    from .tokenizer import load
    from .training import pick_device
    from .workflow import Run

    run, task_type = Run(task, model, method, fraction), params["tasks"][task]["type"]
    name = run.name
    path = Path(upstream(model_dir(task, model, name), f"finetune {run.args()}"))
    net = auto_class(task_type).from_pretrained(path).to(pick_device(params["device"]))
    test = load_from_disk(upstream(tokenized_dir(task), f"tokenize --task {task}"))["test"]
    sequence = task_type == "sequence-classification"
    collator = (DataCollatorWithPadding if sequence else DataCollatorForTokenClassification)(load(path))
    probs = predict(net, test, collator, params["evaluate"]["batch_size"])
    scores, lines, confusion = (_sequence if sequence else _tokens)(test, probs, label_names(test))

    trained = read_json(results_dir(task, model, name) / "metrics.json")
    result = {"test_examples": len(test), **{k: v for k, v in scores.items() if k not in DETAILS},
              **{k: trained[k] for k in ("train_examples", "parameters", "trainable_parameters", "trainable_fraction")}}
    write_json(output("metrics", task, model, name), result)
    write_json(output("details", task, model, name), {k: v for k, v in scores.items() if k in DETAILS})
    with atomic_path(output("predictions", task, model, name)) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    write_json(output("confusion", task, model, name), confusion)
    main = "accuracy" if sequence else "entity_f1"
    print(f"evaluate: {task}/{model}/{name}: test {main} {result[main]:.4f}")
