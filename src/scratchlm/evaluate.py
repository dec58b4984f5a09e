"""Stage `evaluate`: the only reader of the test split. Predicts with a fine-tuned model and writes
metrics (results/metrics/<task>/<model>/<method>.json), one JSON line per test example
(results/predictions/...jsonl) so any metric can be recomputed, and the rows of the confusion
matrix plot (results/plots/confusion/...json)."""

from __future__ import annotations

import json
from pathlib import Path

from .io import atomic_path, read_json, write_json

OUT = {"metrics": ("results/metrics", ".json"), "predictions": ("results/predictions", ".jsonl"),
       "confusion": ("results/plots/confusion", ".json")}


def output(kind: str, task: str, model: str, method: str) -> Path:
    root, suffix = OUT[kind]
    return Path(root) / task / model / f"{method}{suffix}"


def predict(model, dataset, collator, batch_size: int):
    """Class probabilities for every row, in order; a plain loop (no Trainer) with a progress bar."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    model.eval()
    loader = DataLoader(dataset.with_format(columns=["input_ids", "attention_mask"]), batch_size=batch_size,
                        collate_fn=collator)
    probs = []
    with torch.no_grad():
        for batch in tqdm(loader, desc="predict", mininterval=5):
            logits = model(**{k: v.to(model.device) for k, v in batch.items()}).logits
            probs.append(logits.float().softmax(-1).cpu())
    return torch.cat(probs).numpy()


def classification_metrics(y_true, y_pred, label_names: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, classification_report, precision_recall_fscore_support

    labels = list(range(len(label_names)))
    out = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for avg in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        out.update({f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)})
    report = classification_report(y_true, y_pred, labels=labels, target_names=label_names, digits=4,
                                   output_dict=True, zero_division=0)
    out["per_class"] = {n: {k: round(float(v), 4) for k, v in report[n].items()} for n in label_names}
    return out


def report_text(y_true, y_pred, label_names: list[str]) -> str:
    """sklearn's printed classification report, the layout the tutorial chapters show."""
    from sklearn.metrics import classification_report

    return classification_report(y_true, y_pred, labels=list(range(len(label_names))), target_names=label_names,
                                 digits=4, zero_division=0)


def read_predictions(path: Path) -> tuple[list[int], list[int]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [r["label"] for r in rows], [r["prediction"] for r in rows]


def run(params: dict, task: str, model: str, method: str) -> None:
    from datasets import load_from_disk
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    from . import models  # noqa: F401  (registers the Auto classes)
    from .finetune import model_dir, results_dir
    from .tokenize import tokenized_dir
    from .tokenizer import load
    from .training import pick_device

    path = model_dir(task, model, method)
    net = AutoModelForSequenceClassification.from_pretrained(path).to(pick_device(params["device"]))
    test = load_from_disk(str(tokenized_dir(task)))["test"]
    probs = predict(net, test, DataCollatorWithPadding(load(path)), params["evaluate"]["batch_size"])
    y_pred, y_true = probs.argmax(-1).tolist(), list(test["labels"])
    names = [net.config.id2label[i] for i in range(net.config.num_labels)]

    metrics = {"test_examples": len(test), **classification_metrics(y_true, y_pred, names)}
    trained = read_json(results_dir(task, model, method) / "metrics.json")
    metrics.update({k: trained[k] for k in ("parameters", "trainable_parameters", "trainable_fraction")})
    write_json(output("metrics", task, model, method), metrics)
    with atomic_path(output("predictions", task, model, method)) as tmp:
        tmp.write_text("".join(json.dumps({"index": i, "label": t, "prediction": p,
                                           "probabilities": [round(float(x), 5) for x in row]}) + "\n"
                               for i, (t, p, row) in enumerate(zip(y_true, y_pred, probs))))
    write_json(output("confusion", task, model, method),
               [{"actual": names[t], "predicted": names[p]} for t, p in zip(y_true, y_pred)])
    print(f"evaluate: {task}/{model}/{method}: test accuracy {metrics['accuracy']:.4f}, "
          f"macro F1 {metrics['macro_f1']:.4f}")
