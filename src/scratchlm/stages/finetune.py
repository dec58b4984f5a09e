"""Stage `finetune`: fine-tune one pretrained model on one task in one run: a method (`full`,
`frozen`, `scratch`, see finetuning.py), LoRA, or a method on a share of the training labels
(`full-0.1`). ULMFiT's options apply to the recurrent models' full runs (ulmfit.py).
The model is selected on the validation split only; the test split is left to `evaluate`.
"""

from __future__ import annotations

import math

from datasets import load_from_disk

from .. import metrics, paths, training, ulmfit
from ..atomic import upstream, write_json
from ..dag import Run
from ..finetuning import build_model, collator, save, subset, weights_digest
from ..models import RecurrentConfig
from ..params import TrainingConfig, training_config
from ..tokenization import label_names, load


def _ulmfit(net, options: dict, cfg: TrainingConfig, train_rows: int) -> tuple[tuple, list]:
    """(optimizers, callbacks) for Trainer: ULMFiT's groups, schedule and unfreezing."""
    per_epoch = math.ceil(train_rows / cfg.batch_size)
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * per_epoch)
    opt = ulmfit.optimizer(net, options, cfg.lr, cfg.weight_decay)
    sched = ulmfit.scheduler(opt, options, cfg.scheduler, steps, math.ceil(steps * cfg.warmup_ratio))
    return (opt, sched), [ulmfit.unfreezing_callback(net)] if options["gradual_unfreezing"] else []


def run(params: dict, task: str, model: str, run: str) -> dict:
    parsed = Run.parse(task, model, run)
    method, fraction = parsed.method, parsed.fraction
    spec, cfg, ft = params["tasks"][task], training_config(params, "finetune", model), params["finetune"]
    if fraction < 1.0:  # the same number of steps as the run on all labels; early stopping decides
        cfg = cfg.replace(epochs=cfg.epochs / fraction)
    ctx = training.start(params)
    tok = load()
    data = load_from_disk(upstream(paths.path(paths.ENCODED, task=task), f"encode --task {task}"))
    names = label_names(data["train"])
    pretrained = paths.path(paths.PRETRAINED, model=model)
    net = build_model(method, pretrained, spec["type"], names, ft["pooling"], ctx.seed, ft["lora"])
    train_set = subset(data["train"], fraction, ctx.seed)

    use_ulmfit = (method == "full" and net.config.model_type == RecurrentConfig.model_type
                  and ulmfit.enabled(ft["ulmfit"]))
    optimizers, extra = _ulmfit(net, ft["ulmfit"], cfg, len(train_set)) if use_ulmfit else ((None, None), [])
    fingerprint = {"params": [spec, ft["pooling"], ft["lora"] if method == "lora" else None,
                              ft["ulmfit"] if use_ulmfit else None],
                   "data": train_set._fingerprint, "model": weights_digest(pretrained)}
    metric = spec["metric"]
    fitted = training.fit(f"finetune/{task}/{model}/{run}", net, cfg, ctx, fingerprint, train_set, data["validation"],
                          collator(spec["type"], tok), metric=metric, greater_is_better=True,
                          compute_metrics=metrics.for_trainer(spec["type"], names), optimizers=optimizers,
                          extra_callbacks=extra, train_sampling_strategy="group_by_length",
                          remove_unused_columns=False)
    if not training.is_main_process():  # the other workers helped train; rank 0 writes
        return {}
    val = fitted.validation
    write_json(paths.path(paths.FINETUNE_METRICS, task=task, model=model, run=run), {
        f"val_{metric}": round(val[f"eval_{metric}"], 4), "val_loss": round(val["eval_loss"], 4),
        "train_examples": len(train_set), "steps": fitted.trainer.state.global_step,
        "ulmfit": use_ulmfit, "device": ctx.device, "precision": ctx.precision, **training.count_parameters(net)})

    def save_model(folder):
        save(net, folder, method)
        tok.save_pretrained(str(folder))

    training.finish(fitted, paths.path(paths.FINETUNED, task=task, model=model, run=run),
                    paths.path(paths.FINETUNE_PLOTS, task=task, model=model, run=run), save_model)
    print(f"finetune: {task}/{model}/{run}: validation {metric} {val[f'eval_{metric}']:.4f}")
    return fitted.figures
