"""The fine-tuning methods, each in one place: what it trains, where it starts, and the params a
run of it reads beyond those every run reads. The stage table (dag.py) declares those params to
both front ends, `finetune` builds and trains by these fields (finetuning.py, prompting.py), and
the report finds the control (`scratch`) and the runs that stand against it here.

To add a method: a `Method` below, its name in the schema's method enums, and, if it builds its
model in a new way, a branch on a new field in finetuning.build_model (docs/extending.md)."""

from __future__ import annotations

from typing import NamedTuple


class Method(NamedTuple):
    name: str
    trains: str  # in words: docs, `scratchlm dag --explain`
    reads: tuple[str, ...] = ()  # params keys (templates) a run of it reads beyond every run's
    pretrained: bool = True  # starts from the pretrained (task-adapted) weights; False: random weights
    head: bool = True  # a new task head on the model; False: the LM's own head scores verbalizers
    trained: bool = True  # False: scored as it is (zero-shot)
    frozen_encoder: bool = False  # only the weights the checkpoint did not provide train
    adapter: bool = False  # PEFT LoRA adapters on the encoder's Linear layers
    ulmfit: bool = False  # ULMFiT's options (finetune.ulmfit) apply to a recurrent model's runs


POOLING = "finetune.pooling"  # how a head pools a sequence: every head method reads it

METHODS = {m.name: m for m in [
    Method("full", "every weight, from the pretrained model", (POOLING, "finetune.ulmfit"), ulmfit=True),
    Method("frozen", "the task head only, over the frozen pretrained encoder", (POOLING,), frozen_encoder=True),
    Method("scratch", "every weight, from random initialisation: the control that shows what pretraining "
           "bought", (POOLING,), pretrained=False),
    Method("lora", "LoRA adapters on the encoder's Linear layers, and the task head (PEFT)",
           (POOLING, "finetune.lora"), adapter=True),
    Method("prompt", "nothing: the language model scores each label's verbalizer words in the task's template "
           "(zero-shot, calibrated)", ("finetune.prompting", "pretrain.models.{model}", "evaluate.batch_size"),
           head=False, trained=False),
    Method("pet", "the language model's own weights, on the cross-entropy of the verbalizers' scores (PET)",
           ("finetune.prompting", "pretrain.models.{model}"), head=False),
]}

CONTROL = METHODS["scratch"]  # the same architecture from random weights: what every gain is measured against
FULL = METHODS["full"]  # the pretrained run the headline sets against the control


def method(name: str) -> Method:
    return METHODS[name]


def reads(names: tuple[str, ...]) -> tuple[str, ...]:
    """The params keys the runs of these methods read, each once, in order."""
    return tuple(dict.fromkeys(key for name in names for key in METHODS[name].reads))
