"""Stage `finetune`: fine-tune one pretrained model on one task with one method.

Methods: `full` trains every weight (with ULMFiT's options for recurrent models, see ulmfit.py);
`frozen` trains only the task head over the frozen pretrained encoder; `lora` trains PEFT LoRA
adapters on the encoder's Linear layers and the new head; `scratch` is the control: the
pretrained model's own config (so the same architecture by construction) with random weights,
trained on the same budget. `--fraction` trains on a share of the training labels.
The model is selected on the validation split only; the test split is left to `evaluate`.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from .errors import ScratchError
from .io import atomic_path, upstream, write_json

# validation metric -> is greater better
METRICS = {"accuracy": True, "macro_f1": True, "entity_f1": True, "token_accuracy": True}
ADAPTER_DIR = "adapter"  # a LoRA run keeps its adapter here, beside the merged model


def model_dir(task: str, model: str, run: str) -> Path:
    return Path("models/finetune") / task / model / run


def results_dir(task: str, model: str, run: str) -> Path:
    return Path("results/finetune") / task / model / run


def auto_class(task_type: str):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    return AutoModelForSequenceClassification if task_type == "sequence-classification" else AutoModelForTokenClassification


def build_model(method: str, pretrained: Path, task_type: str, label_names: list[str], pooling: str, seed: int,
                lora: dict | None = None):
    """The task model for a method. `frozen` trains exactly the weights the checkpoint did not
    provide (the head: a recurrent model's classifier; BERT's pooler and classifier); `lora` the
    adapters and those same new weights."""
    import torch
    from transformers import AutoConfig

    from . import models  # noqa: F401  (registers the Auto classes)

    auto = auto_class(task_type)
    labels = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
              "label2id": {n: i for i, n in enumerate(label_names)}}
    if AutoConfig.from_pretrained(pretrained).model_type == models.RecurrentConfig.model_type:
        labels["pooling"] = pooling  # BERT pools through its [CLS] pooler
    torch.manual_seed(seed)  # the new head's initialisation
    if method == "scratch":
        return auto.from_config(AutoConfig.from_pretrained(pretrained, **labels))
    model, info = auto.from_pretrained(pretrained, output_loading_info=True, **labels)
    new = set(info["missing_keys"])
    if method == "frozen":
        for name, p in model.named_parameters():
            p.requires_grad = name in new
    if method == "lora":
        return with_lora(model, lora, task_type, sorted({k.rsplit(".", 1)[0] for k in new}))
    return model


def with_lora(model, cfg: dict, task_type: str, new_modules: list[str]):
    """PEFT LoRA on the encoder's `target_modules`; the new head modules train in full."""
    from peft import LoraConfig, TaskType, get_peft_model

    peft_task = TaskType.SEQ_CLS if task_type == "sequence-classification" else TaskType.TOKEN_CLS
    config = LoraConfig(task_type=peft_task, r=cfg["r"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                        target_modules=cfg["target_modules"], modules_to_save=new_modules)
    try:
        return get_peft_model(model, config)
    except ValueError as e:  # PEFT: target modules not found in the model
        raise ScratchError(f"finetune.lora.target_modules = {cfg['target_modules']}: {str(e).splitlines()[0]}") from None


def subset(train, fraction: float, seed: int):
    """A deterministic share of the training rows (at least one batch's worth of signal: >= 1 row)."""
    if fraction >= 1.0:
        return train
    return train.shuffle(seed=seed).select(range(max(1, math.ceil(len(train) * fraction))))


MODEL_COLUMNS = ("input_ids", "labels")  # what the collator passes on; padding adds the mask


def collator(task_type: str, tok):
    """Dynamic padding of the model's columns; the others (`length`, NER's words and tags) stay
    in the dataset. Trainer's own column removal would strip `length` before its length-grouped
    sampler reads it, and the sampler would then fetch every row to measure it (1 s on SST-2)."""
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    padder = DataCollatorWithPadding if task_type == "sequence-classification" else DataCollatorForTokenClassification
    pad = padder(tok)

    def collate(rows: list[dict]) -> dict:
        return pad([{k: row[k] for k in MODEL_COLUMNS if k in row} for row in rows])

    return collate


def _ulmfit(net, options: dict, cfg: dict, train_rows: int) -> tuple[tuple, list]:
    """(optimizers, callbacks) for Trainer: ULMFiT's groups, schedule and unfreezing."""
    from . import ulmfit

    per_epoch = math.ceil(train_rows / cfg["batch_size"])
    steps = cfg["max_steps"] if cfg["max_steps"] > 0 else math.ceil(cfg["epochs"] * per_epoch)
    opt = ulmfit.optimizer(net, options, cfg["lr"], cfg["weight_decay"])
    sched = ulmfit.scheduler(opt, options, steps, math.ceil(steps * cfg["warmup_ratio"]))
    return (opt, sched), [ulmfit.unfreezing_callback(net)] if options["gradual_unfreezing"] else []


def run(params: dict, task: str, model: str, method: str, fraction: float = 1.0) -> dict:
    from datasets import load_from_disk
    from transformers import set_seed

    from . import metrics, training, ulmfit
    from .params import finetuning
    from .pretrain import model_dir as pretrained_dir
    from .tokenize import label_names, tokenized_dir
    from .tokenizer import load
    from .workflow import Run

    name = Run(task, model, method, fraction).name
    spec, cfg, seed = params["tasks"][task], finetuning(params, model), params["seed"]
    if fraction < 1.0:  # the same number of steps as the run on all labels; early stopping decides
        cfg = {**cfg, "epochs": cfg["epochs"] / fraction}
    ft = params["finetune"]
    device = training.pick_device(params["device"])
    precision = training.pick_precision(params["precision"], device)
    set_seed(seed)
    tok = load()
    data = load_from_disk(upstream(tokenized_dir(task), f"tokenize --task {task}"))
    names = label_names(data["train"])
    net = build_model(method, pretrained_dir(model), spec["type"], names, ft["pooling"], seed, ft["lora"])
    train_set = subset(data["train"], fraction, seed)

    use_ulmfit = (method == "full" and net.config.model_type == "scratchlm-recurrent"
                  and ulmfit.enabled(ft["ulmfit"]))
    run_name = f"finetune/{task}/{model}/{name}"
    run_dir = training.checkpoint_dir(run_name, {
        "params": [spec, cfg, seed, params["processes"], precision, ft["pooling"], ft["lora"] if method == "lora" else None,
                   ft["ulmfit"] if use_ulmfit else None],
        "data": train_set._fingerprint, "model": _model_stamp(pretrained_dir(model))})
    metric = spec["metric"]
    args = training.arguments(cfg, run_dir, seed, device, precision, metric, METRICS[metric],
                              train_sampling_strategy="group_by_length", remove_unused_columns=False)
    optimizers, extra_callbacks = _ulmfit(net, ft["ulmfit"], cfg, len(train_set)) if use_ulmfit else ((None, None), [])
    callbacks = training.callbacks(cfg, run_dir / "live", resume=True,
                                   key=training.settings_key(params, "finetune", model)) + extra_callbacks
    trainer = training.trainer_class()(model=net, args=args, train_dataset=train_set, eval_dataset=data["validation"],
                                       data_collator=collator(spec["type"], tok),
                                       compute_metrics=metrics.for_trainer(spec["type"], names),
                                       optimizers=optimizers, callbacks=callbacks)
    figures = training.train(trainer, run_dir)
    val = trainer.evaluate()  # the restored best checkpoint
    if not training.is_main_process():  # the other workers helped train; rank 0 writes
        return {}
    counts = training.count_parameters(net)

    with atomic_path(model_dir(task, model, name), is_dir=True) as tmp:
        _save(net, tmp, method)
        tok.save_pretrained(str(tmp))
    out = results_dir(task, model, name)
    with atomic_path(out / "plots", is_dir=True) as tmp:
        training.copy_curves(run_dir / "live", tmp)
    write_json(out / "metrics.json", {
        f"val_{metric}": round(val[f"eval_{metric}"], 4), "val_loss": round(val["eval_loss"], 4),
        "train_examples": len(train_set), "steps": trainer.state.global_step,
        "ulmfit": use_ulmfit, "device": device, "precision": precision, **counts})
    training.finish(run_dir)
    print(f"finetune: {run_name}: validation {metric} {val[f'eval_{metric}']:.4f}")
    return figures


def _save(net, folder: Path, method: str) -> None:
    """The model `evaluate` loads through the Auto classes; a LoRA run's adapters merged into it,
    and kept on their own under adapter/ (a few KB, loadable with PEFT on the pretrained model)."""
    if method == "lora":
        net.save_pretrained(str(folder / ADAPTER_DIR))
        net = net.merge_and_unload()
    net.save_pretrained(str(folder))


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
