"""Metric functions shared by `finetune` (validation, to select the checkpoint) and `evaluate`
(test): classification scores in sklearn's layout, and entity-level NER scores with seqeval in
strict IOB2 mode next to the token-level report."""

from __future__ import annotations

import statistics

IGNORE = -100  # label of unscored positions (special tokens, continuation sub-tokens), as encode writes it


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (std 0 for one seed)."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def classification(y_true, y_pred, label_names: list[str]) -> dict:
    """accuracy, macro/micro P/R/F1 and the per-class report."""
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


def classification_text(y_true, y_pred, label_names: list[str]) -> str:
    """sklearn's printed classification report, the layout the tutorial chapters show."""
    from sklearn.metrics import classification_report

    return classification_report(y_true, y_pred, labels=list(range(len(label_names))), target_names=label_names,
                                 digits=4, zero_division=0)


def entities(true_tags: list[list[str]], pred_tags: list[list[str]]) -> dict:
    """Entity-level P/R/F1 (seqeval, strict IOB2: an entity counts only with exact span and type),
    overall (micro) and per type, plus token accuracy and the token-level per-tag report."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    strict = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    report = classification_report(true_tags, pred_tags, output_dict=True, **strict)
    flat_true = [t for seq in true_tags for t in seq]
    flat_pred = [p for seq in pred_tags for p in seq]
    return {
        "entity_precision": float(precision_score(true_tags, pred_tags, **strict)),
        "entity_recall": float(recall_score(true_tags, pred_tags, **strict)),
        "entity_f1": float(f1_score(true_tags, pred_tags, **strict)),
        "token_accuracy": sum(t == p for t, p in zip(flat_true, flat_pred)) / max(1, len(flat_true)),
        "per_type": {k: {m: round(float(v), 4) for m, v in row.items()} for k, row in sorted(report.items())
                     if not k.endswith(" avg")},
        "per_tag": _token_report(flat_true, flat_pred),
    }


def _token_report(flat_true: list[str], flat_pred: list[str]) -> dict:
    from sklearn.metrics import classification_report

    names = sorted(set(flat_true) | set(flat_pred))
    report = classification_report(flat_true, flat_pred, labels=names, output_dict=True, zero_division=0)
    return {n: {k: round(float(v), 4) for k, v in report[n].items()} for n in names}


def entities_text(true_tags: list[list[str]], pred_tags: list[list[str]]) -> str:
    """seqeval's printed entity report and sklearn's token-level one, as the tutorial chapters print them."""
    from seqeval.metrics import classification_report as entity_report
    from seqeval.scheme import IOB2
    from sklearn.metrics import classification_report

    flat_true = [t for seq in true_tags for t in seq]
    flat_pred = [p for seq in pred_tags for p in seq]
    return (entity_report(true_tags, pred_tags, mode="strict", scheme=IOB2, digits=4, zero_division=0)
            + "\n" + classification_report(flat_true, flat_pred, digits=4, zero_division=0))


def word_tags(predictions, labels, names: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """(true, predicted) tag names per sequence from position-level ids, keeping only the scored
    positions: each word's first sub-token."""
    true, pred = [], []
    for p_row, l_row in zip(predictions, labels):
        keep = [(names[gold], names[p]) for p, gold in zip(p_row, l_row) if gold != IGNORE]
        true.append([t for t, _ in keep])
        pred.append([p for _, p in keep])
    return true, pred


def for_trainer(task_type: str, label_names: list[str]):
    """A `compute_metrics` for `Trainer`: the scores the task's validation metric is chosen from."""
    def sequence(eval_pred) -> dict:
        m = classification(eval_pred.label_ids, eval_pred.predictions.argmax(-1), label_names)
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    def token(eval_pred) -> dict:
        true, pred = word_tags(eval_pred.predictions.argmax(-1), eval_pred.label_ids, label_names)
        m = entities(true, pred)
        return {"entity_f1": m["entity_f1"], "token_accuracy": m["token_accuracy"]}

    return sequence if task_type == "sequence-classification" else token
