"""Stage `finetune`: fine-tune one pretrained model on one task with one method.

Methods: `full` trains every weight; `frozen` trains only the task head over the frozen
pretrained encoder; `scratch` is the control: the pretrained model's own config (so the same
architecture by construction) with random weights, trained on the same budget.
The model is selected on the validation split only; the test split is left to `evaluate`.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from .errors import ScratchError
from .io import atomic_path, write_json

# validation metric -> is greater better
METRICS = {"accuracy": True, "macro_f1": True}


def model_dir(task: str, model: str, method: str) -> Path:
    return Path("models/finetune") / task / model / method


def results_dir(task: str, model: str, method: str) -> Path:
    return Path("results/finetune") / task / model / method


def classification_scores(predictions, labels) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(labels, predictions)),
            "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0))}


def _compute_metrics(eval_pred) -> dict:
    return classification_scores(eval_pred.predictions.argmax(-1), eval_pred.label_ids)


def build_model(method: str, pretrained: Path, label_names: list[str], pooling: str, seed: int):
    """The task model for a method. `frozen` trains exactly the weights the checkpoint did not
    provide (the head: a recurrent model's classifier; BERT's pooler and classifier)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from . import models  # noqa: F401  (registers the Auto classes)

    labels = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
              "label2id": {n: i for i, n in enumerate(label_names)}}
    if AutoConfig.from_pretrained(pretrained).model_type == models.RecurrentConfig.model_type:
        labels["pooling"] = pooling  # BERT pools through its [CLS] pooler
    if method == "scratch":
        torch.manual_seed(seed)
        return AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(pretrained, **labels))
    model, info = AutoModelForSequenceClassification.from_pretrained(pretrained, output_loading_info=True, **labels)
    if method == "frozen":
        new = set(info["missing_keys"])
        for name, p in model.named_parameters():
            p.requires_grad = name in new
    return model


def run(params: dict, task: str, model: str, method: str) -> None:
    from datasets import load_from_disk
    from transformers import DataCollatorWithPadding, Trainer, set_seed

    from . import training
    from .pretrain import model_dir as pretrained_dir
    from .tokenize import tokenized_dir
    from .tokenizer import load

    from .params import finetuning

    spec, cfg, seed = params["tasks"][task], finetuning(params, model), params["seed"]
    device = training.pick_device(params["device"])
    set_seed(seed)
    tok = load()
    data = load_from_disk(str(tokenized_dir(task)))
    label_names = data["train"].features["labels"].names
    net = build_model(method, pretrained_dir(model), label_names, params["finetune"]["pooling"], seed)
    train_set = data["train"].map(lambda b: {"length": [len(x) for x in b["input_ids"]]}, batched=True)

    run_name = f"finetune/{task}/{model}/{method}"
    run_dir = training.checkpoint_dir(run_name, {"params": [spec, cfg, seed, params["finetune"]["pooling"]],
                                                 "data": data["train"]._fingerprint,
                                                 "model": _model_stamp(pretrained_dir(model))})
    metric = spec["metric"]
    args = training.arguments(cfg, run_dir, seed, device, metric, METRICS[metric],
                              train_sampling_strategy="group_by_length")
    trainer = Trainer(model=net, args=args, train_dataset=train_set, eval_dataset=data["validation"],
                      data_collator=DataCollatorWithPadding(tok), compute_metrics=_compute_metrics,
                      callbacks=training.callbacks(cfg, run_dir / "live", resume=True))
    start = time.perf_counter()
    training.train(trainer, run_dir)
    seconds = time.perf_counter() - start
    val = trainer.evaluate()  # the restored best checkpoint

    with atomic_path(model_dir(task, model, method), is_dir=True) as tmp:
        trainer.save_model(str(tmp))
        tok.save_pretrained(str(tmp))
    out = results_dir(task, model, method)
    with atomic_path(out / "plots", is_dir=True) as tmp:
        training.copy_curves(run_dir / "live", tmp)
    write_json(out / "metrics.json", {
        f"val_{metric}": round(val[f"eval_{metric}"], 4), "val_loss": round(val["eval_loss"], 4),
        "steps": trainer.state.global_step, "train_seconds": round(seconds, 1), "device": device,
        **training.count_parameters(net)})
    training.finish(run_dir)
    print(f"finetune: {run_name}: validation {metric} {val[f'eval_{metric}']:.4f}")


def _model_stamp(path: Path) -> str:
    """Identity of the pretrained weights a run starts from (a content hash: a DVC checkout
    changes mtimes, not content)."""
    f = path / "model.safetensors"
    if not f.exists():
        raise ScratchError(f"{f}: pretrained model missing; run the pretrain stage first "
                           f"(snakemake --cores all, or dvc repro)")
    digest = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
