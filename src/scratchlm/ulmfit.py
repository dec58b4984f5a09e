"""ULMFiT's fine-tuning recipe (Howard & Ruder, 2018) for the recurrent models, as options:

- discriminative learning rates: layer group k below the head trains at lr / decay^k;
- gradual unfreezing: the head trains alone first, then one more group at a time, top down, until
  every group trains, over the first `unfreeze_share` of the run's steps (ULMFiT unfreezes one
  group per epoch; counting steps instead, a one- or two-epoch run unfreezes every group too);
- slanted triangular learning rates: a short linear rise to lr, then a long linear decay to lr / ratio.

Layer groups, bottom up: the embeddings, each recurrent layer (forward and backward LM together),
then the head (everything outside the base model).
"""

from __future__ import annotations

import math
import re

import torch
from transformers import TrainerCallback, get_scheduler

CUT_FRAC, RATIO = 0.1, 32  # the paper's slanted-triangular settings


def enabled(options: dict) -> bool:
    return (options["discriminative_decay"] != 1.0 or options["gradual_unfreezing"]
            or options["slanted_triangular"])


def layer_groups(model) -> list[list]:
    """Parameters by layer group, bottom (embeddings) to top (head)."""
    layers = model.config.num_layers
    groups: list[list] = [[] for _ in range(layers + 2)]
    for name, p in model.named_parameters():
        if name.startswith("model.embeddings."):
            groups[0].append(p)
        elif name.startswith("model.rnn"):
            groups[1 + int(re.search(r"_l(\d+)", name).group(1))].append(p)
        else:
            groups[-1].append(p)
    return groups


def optimizer(model, options: dict, lr: float, weight_decay: float):
    """AdamW over every group at its own learning rate (frozen groups included, so that unfreezing
    needs no new optimizer); biases are not decayed."""
    param_groups = []
    top = len(layer_groups(model)) - 1
    for k, params in enumerate(layer_groups(model)):
        group_lr = lr / options["discriminative_decay"] ** (top - k)
        for decay in (True, False):
            chosen = [p for p in params if (p.dim() > 1) == decay]
            if chosen:
                param_groups.append({"params": chosen, "lr": group_lr, "weight_decay": weight_decay if decay else 0.0})
    return torch.optim.AdamW(param_groups, lr=lr)


def slanted_triangular(step: int, total: int) -> float:
    """The learning-rate multiplier at `step` of `total` (1 at the peak, 1/RATIO at both ends)."""
    cut = max(1, math.floor(total * CUT_FRAC))
    p = step / cut if step < cut else 1 - (step - cut) / max(1, total - cut)
    return (1 + max(0.0, p) * (RATIO - 1)) / RATIO


def scheduler(opt, options: dict, name: str, total_steps: int, warmup_steps: int):
    """The slanted triangle, or the run's own `scheduler` (finetune.training) over the same groups."""
    if options["slanted_triangular"]:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: slanted_triangular(step, total_steps))
    return get_scheduler(name, opt, num_warmup_steps=warmup_steps, num_training_steps=total_steps)


def unfreeze_steps(n_groups: int, total_steps: int, share: float) -> list[int]:
    """The step from which each layer group (bottom up) trains: the head from step 0, the group
    below it after one period, ..., the embeddings at `share` of the run."""
    period = share * total_steps / max(1, n_groups - 1)
    return [math.ceil((n_groups - 1 - k) * period) for k in range(n_groups)]


class GradualUnfreezing(TrainerCallback):
    """Sets requires_grad per layer group at each step (AdamW skips gradient-less weights); read
    from the step count, so a resumed run finds the same state. `done_at`: the step from which
    every group trains."""

    def __init__(self, model, total_steps: int, share: float):
        self.groups = layer_groups(model)
        self.starts = unfreeze_steps(len(self.groups), total_steps, share)
        self.done_at = max(self.starts)

    def on_step_begin(self, args, state, control, **kwargs):
        for params, start in zip(self.groups, self.starts):
            for p in params:
                p.requires_grad_(state.global_step >= start)
