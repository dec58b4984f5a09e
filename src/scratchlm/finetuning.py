"""Task models for fine-tuning, shared by `finetune` (which trains them) and `evaluate` (which
loads them): the model for a method, LoRA, the share of the labels a run trains on, and the
collator that pads a batch.

A method (methods.py) says what trains: every weight (`full`), the head over the frozen encoder
(`frozen`), PEFT LoRA adapters and the head (`lora`); the control (`scratch`) is the pretrained
model's own config (so the same architecture by construction) with random weights, trained on the
same budget.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from peft import LoraConfig, TaskType, get_peft_model
from transformers import AutoConfig, DataCollatorForTokenClassification, DataCollatorWithPadding

from . import models
from .errors import ScratchError
from .methods import Method

ADAPTER_DIR = "adapter"  # a LoRA run keeps its adapter here, beside the merged model
MODEL_COLUMNS = ("input_ids", "labels")  # what the collator passes on; padding adds the mask


def build_model(method: Method, pretrained: Path, task_type: str, label_names: list[str], pooling: str, seed: int,
                lora: dict | None = None, head: dict | None = None, tokenizer=None):
    """The task model for a method. `frozen` trains exactly the weights the checkpoint did not
    provide (the head: a recurrent model's classifier or tagging head; BERT's pooler and
    classifier); `lora` the adapters and those same new weights. `head`: a task's `head` options
    (token classification: characters, tagger, CRF, the tokenizer filling the piece table;
    sequence classification: a recurrent model's task reader)."""
    config = AutoConfig.from_pretrained(pretrained)
    recurrent = config.model_type == models.RecurrentConfig.model_type
    options = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
               "label2id": {n: i for i, n in enumerate(label_names)}}
    if recurrent:
        options["pooling"] = pooling  # BERT pools through its [CLS] pooler
        if task_type == "sequence-classification" and head is not None:
            options["reader_hidden"] = head["reader_hidden"]
    tagging = task_type == "token-classification" and head is not None and any(
        head[k] for k in ("char_filters", "tagger_hidden", "crf"))
    if tagging:
        options.update(head)
    model_class = models.auto_class(task_type)
    if tagging and not recurrent:
        config, model_class = models.BertTaggerConfig.from_dict({**config.to_dict(), **options}), models.BertForTagging
    else:
        config = AutoConfig.from_pretrained(pretrained, **options)
    torch.manual_seed(seed)  # the new head's initialisation
    if not method.pretrained:
        model = model_class(config) if model_class is models.BertForTagging else model_class.from_config(config)
        new = set()
    else:
        model, info = model_class.from_pretrained(pretrained, config=config, output_loading_info=True)
        new = set(info["missing_keys"]) & {name for name, _ in model.named_parameters()}
    if tagging:
        model.head.set_vocabulary(tokenizer)
    if method.frozen_encoder:
        for name, p in model.named_parameters():
            p.requires_grad = name in new
    if method.adapter:
        return with_lora(model, lora, task_type, outermost({k.rsplit(".", 1)[0] for k in new}))
    return model


def outermost(modules: set[str]) -> list[str]:
    """The modules none of whose ancestors is in the set (PEFT would wrap a module twice)."""
    return sorted(m for m in modules if not any(m.startswith(other + ".") for other in modules))


def with_lora(model, cfg: dict, task_type: str, new_modules: list[str]):
    """PEFT LoRA on the encoder's `target_modules`; the new head modules train in full."""
    peft_task = TaskType.SEQ_CLS if task_type == "sequence-classification" else TaskType.TOKEN_CLS
    config = LoraConfig(task_type=peft_task, r=cfg["r"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                        target_modules=cfg["target_modules"], modules_to_save=new_modules)
    try:
        return get_peft_model(model, config)
    except ValueError as e:  # PEFT: target modules not found in the model
        raise ScratchError(f"finetune.lora.target_modules = {cfg['target_modules']}: "
                           f"{str(e).splitlines()[0]}") from None


def save(net, folder: Path, method: Method) -> None:
    """The model `evaluate` loads through the Auto classes; a LoRA run's adapters merged into it,
    and kept on their own under adapter/ (a few KB, loadable with PEFT on the pretrained model)."""
    if method.adapter:
        net.save_pretrained(str(folder / ADAPTER_DIR))
        net = net.merge_and_unload()
    net.save_pretrained(str(folder))


def subset(train, fraction: float, seed: int):
    """A deterministic share of the training rows (at least one row)."""
    if fraction >= 1.0:
        return train
    return train.shuffle(seed=seed).select(range(max(1, math.ceil(len(train) * fraction))))


def per_class(ds, k: int, seed: int):
    """A deterministic k rows of each class (all of a class's rows if it has fewer)."""
    shuffled = ds.shuffle(seed=seed)
    picked, taken = [], {}
    for i, label in enumerate(shuffled["labels"]):
        if taken.get(label, 0) < k:
            taken[label] = taken.get(label, 0) + 1
            picked.append(i)
    return shuffled.select(sorted(picked))


def collator(task_type: str, tok):
    """Dynamic padding of the model's columns; the others (`length`, NER's words and tags) stay
    in the dataset. Trainer's own column removal would strip `length` before its length-grouped
    sampler reads it, and the sampler would then fetch every row to measure it."""
    padder = DataCollatorWithPadding if task_type == "sequence-classification" else DataCollatorForTokenClassification
    pad = padder(tok)

    def collate(rows: list[dict]) -> dict:
        return pad([{k: row[k] for k in MODEL_COLUMNS if k in row} for row in rows])

    return collate
