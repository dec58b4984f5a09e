"""A training run's optimisation settings, merged from the params sections that set them: the
stage's `training` section, then the task's and the model's own overrides, then the task's values
for the run's method (a learning rate chosen per arm: `tasks.<task>.method_overrides.scratch`).
Built in one place (`training_config`), checked by params validation, and read by the training
code (training.py, ulmfit.py). Free of torch, so that params validation can build it."""

from __future__ import annotations

import dataclasses

# stage -> the params sections its training settings come from, later ones overriding earlier ones
TRAINING_SECTIONS = {"pretrain": ("pretrain.training", "pretrain.models.{model}.training"),
                     "adapt": ("adapt.training", "adapt.overrides.{model}"),
                     "finetune": ("finetune.training", "tasks.{task}.training", "finetune.overrides.{model}",
                                  "tasks.{task}.method_overrides.{method}"),
                     "prompting": ("finetune.prompting.training", "finetune.prompting.overrides.{model}")}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The settings of one training run; `layers` records which params section set which keys."""
    epochs: float
    max_steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_ratio: float
    scheduler: str
    grad_clip: float
    eval_steps: int
    early_stopping_patience: int
    layers: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (params section, the settings it sets), in order

    def key(self, setting: str) -> str:
        """The params key a setting came from, for messages: `finetune.overrides.bert.lr`."""
        section = next((name for name, sets in reversed(self.layers) if setting in sets), self.layers[0][0])
        return f"{section}.{setting}"

    def replace(self, **changes) -> TrainingConfig:
        return dataclasses.replace(self, **changes)


def _lookup(p: dict, dotted: str) -> dict:
    for part in dotted.split("."):
        p = p.get(part, {})
    return p


def _layers(p: dict, sections: str, model: str, task: str | None, settings: dict | None = None,
            method: str | None = None) -> list[tuple[str, dict]]:
    """(params section, its settings) in order, those of a task or method only where one is given;
    those `settings` holds are read from it, not params."""
    names = [s.format(model=model, task=task, method=method) for s in TRAINING_SECTIONS[sections]
             if (task or "{task}" not in s) and (method or "{method}" not in s)]
    return [(name, settings[name] if settings and name in settings else _lookup(p, name)) for name in names]


def training_section(p: dict, sections: str, model: str, task: str | None = None,
                     method: str | None = None) -> dict:
    """The merged training settings of a model (on a task, by a method) from a TRAINING_SECTIONS
    entry, as a plain mapping."""
    return {k: v for _, layer in _layers(p, sections, model, task, method=method) for k, v in layer.items()}


def setting_key(p: dict, sections: str, model: str, task: str | None, setting: str,
                method: str | None = None) -> str:
    """The params key a setting of the merged section comes from: `finetune.overrides.bert.lr`."""
    layers = _layers(p, sections, model, task, method=method)
    return f"{next((name for name, layer in reversed(layers) if setting in layer), layers[0][0])}.{setting}"


def model_layers(p: dict, sections: str, model: str) -> dict[str, dict]:
    """The layers of a model's training settings that no task sets, each without the keys a later
    one sets: what its runs can see of them (the `settings` stage's file). A run tracks this, not
    the shared sections whole, so that changing `finetune.training.lr` leaves the runs of a model
    whose `finetune.overrides.<model>.lr` pins it alone, in DVC as in Snakemake. (The task's
    layers are not here: a run tracks its task's params whole.)"""
    layers = _layers(p, sections, model, None)
    return {name: {k: v for k, v in layer.items() if not any(k in later for _, later in layers[i + 1:])}
            for i, (name, layer) in enumerate(layers)}


def training_config(p: dict, sections: str, model: str, task: str | None = None,
                    settings: dict | None = None, method: str | None = None) -> TrainingConfig:
    """The merged settings of a run; `settings`: the model's layers as the `settings` stage wrote
    them (model_layers), which then stand for params' own; `method`: the run's (full, scratch...)."""
    layers = _layers(p, sections, model, task, settings, method)
    return TrainingConfig(**{k: v for _, layer in layers for k, v in layer.items()},
                          layers=tuple((name, tuple(layer)) for name, layer in layers))
