"""Stage `finetune`: fine-tune one model on one task in one run, once per seed in
`finetune.seeds`: a method (`full`, `frozen`, `scratch`, see finetuning.py), LoRA, a method on a
share of the training labels (`full-0.1`), or the adaptation ablation (`full-general`).

A run starts from the task-adapted model (models/adapt/<task>/<model>), the ablation runs from
the general pretrained one. ULMFiT's options apply to the recurrent models' full runs
(ulmfit.py); early stopping counts only the evaluations after gradual unfreezing has released
the last layer group. The model is selected on the validation split only; the test split is left
to `evaluate`. One job trains every seed (each job pays the torch and transformers import once):
a finished seed is kept with the run's checkpoints, so a killed job resumes at the seed it was in.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics

from datasets import load_from_disk

from .. import metrics, paths, training, ulmfit
from ..atomic import atomic_path, upstream, write_json
from ..dag import RUN_KINDS, Run
from ..finetuning import build_model, collator, per_class, save, subset
from ..models import RecurrentConfig, is_causal, language_model
from ..params import TrainingConfig, training_config
from ..prompting import Prompt, PromptModel, probabilities
from ..tokenization import label_names, load

RESULT = "result.json"  # a finished seed's validation scores, beside its model


def _ulmfit(net, options: dict, cfg: TrainingConfig, train_rows: int) -> tuple[tuple, list, int]:
    """(optimizers, callbacks, the step from which every group trains) for ULMFiT's groups,
    schedule and gradual unfreezing."""
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * math.ceil(train_rows / cfg.batch_size))
    opt = ulmfit.optimizer(net, options, cfg.lr, cfg.weight_decay)
    sched = ulmfit.scheduler(opt, options, cfg.scheduler, steps, math.ceil(steps * cfg.warmup_ratio))
    if not options["gradual_unfreezing"]:
        return (opt, sched), [], 0
    unfreezing = ulmfit.GradualUnfreezing(net, steps, options["unfreeze_share"])
    return (opt, sched), [unfreezing], unfreezing.done_at


def _one_seed(params: dict, run: Run, cfg: TrainingConfig, seed: int, tok, data, names: list[str]) -> dict:
    """Train one seed of the run, or read it back if a killed job finished it: its validation
    scores, training figures and the folder of its model and curves."""
    spec, ft = params["tasks"][run.task], params["finetune"]
    ctx = training.start(params, seed)
    start = paths.path(RUN_KINDS[run.kind].start, task=run.task, model=run.model)
    train_set, validation = _labelled(data, run, seed)
    use_ulmfit = run.method == "full" and _recurrent(start) and ulmfit.enabled(ft["ulmfit"])
    run_dir = training.checkpoints(f"finetune/{run.job}/seed{seed}", cfg, ctx, data=train_set._fingerprint,
                                   model=training.weights_digest(start),
                                   params=[spec, ft["pooling"], ft["lora"] if run.method == "lora" else None,
                                           ft["ulmfit"] if use_ulmfit else None,
                                           ft["prompting"] if run.method in PROMPTED else None])
    final = run_dir / "final"
    if (final / RESULT).exists():
        print(f"finetune: {run.job}: seed {seed} finished before; kept")
        return json.loads((final / RESULT).read_text())
    if run.method in PROMPTED:
        net, fitted = _prompted(params, run, cfg, ctx, run_dir, start, tok, names, train_set, validation)
    else:
        net, fitted = _with_head(params, run, cfg, ctx, run_dir, start, tok, names, train_set, validation,
                                 use_ulmfit)
    if not training.is_main_process():  # the other workers helped train; rank 0 writes
        return {}
    metric = spec["metric"]
    val = fitted.validation
    result = {"seed": seed, "val_metric": val[f"eval_{metric}"], "val_loss": val.get("eval_loss", float("nan")),
              "steps": fitted.trainer.state.global_step if fitted.trainer else 0,
              "train_examples": 0 if run.method == "prompt" else len(train_set),
              "ulmfit": use_ulmfit, "device": ctx.device, "precision": ctx.precision, "figures": fitted.figures,
              **training.count_parameters(net)}
    with atomic_path(final, is_dir=True) as tmp:
        save(net, tmp / "model", run.method)
        tok.save_pretrained(str(tmp / "model"))
        (tmp / "plots").mkdir()
        training.copy_curves(run_dir / "live", tmp / "plots")
        (tmp / RESULT).write_text(json.dumps(result))
    print(f"finetune: {run.job}: seed {seed}: validation {metric} {result['val_metric']:.4f}")
    return result


PROMPTED = ("prompt", "pet")  # methods that score verbalizers with the LM's own head (prompting.py)


def _labelled(data, run: Run, seed: int):
    """The run's training rows (a share, or k per class) and validation rows (k per class for a
    few-shot run, as LM-BFF selects: a validation set as small as the training set)."""
    if run.shots:
        return per_class(data["train"], run.shots, seed), per_class(data["validation"], run.shots, seed)
    return subset(data["train"], run.fraction, seed), data["validation"]


def _with_head(params, run, cfg, ctx, run_dir, start, tok, names, train_set, validation, use_ulmfit):
    """A task head over the model (full, frozen, scratch, lora), trained with Trainer."""
    spec, ft = params["tasks"][run.task], params["finetune"]
    net = build_model(run.method, start, spec["type"], names, ft["pooling"], ctx.seed, ft["lora"], spec["head"], tok)
    optimizers, extra, patience_from = (_ulmfit(net, ft["ulmfit"], cfg, len(train_set)) if use_ulmfit
                                        else ((None, None), [], 0))
    fitted = training.fit(run_dir, net, cfg, ctx, train_set, validation, collator(spec["type"], tok),
                          metric=spec["metric"], greater_is_better=True, patience_from=patience_from,
                          compute_metrics=metrics.for_trainer(spec["type"], names), optimizers=optimizers,
                          extra_callbacks=extra, train_sampling_strategy="group_by_length",
                          remove_unused_columns=False)
    return net, fitted


def _prompted(params, run, cfg, ctx, run_dir, start, tok, names, train_set, validation):
    """`prompt`: the LM as it is, scored on validation; `pet`: the LM trained on the verbalizers'
    scores. Either way the saved model is the LM with its prompt in its config."""
    spec, options = params["tasks"][run.task], params["finetune"]["prompting"]
    model_spec = params["pretrain"]["models"][run.model]
    lm = language_model(start, model_spec)
    prompt = Prompt.build(tok, spec["prompt"]["template"], spec["prompt"]["verbalizers"], names)
    calibrate = options["calibrate"] if run.method == "prompt" else "none"  # pet learns its own prior
    lm.config.prompt = {**spec["prompt"], "labels": names, "calibrate": calibrate}
    causal = is_causal(model_spec)
    if run.method == "prompt":
        probs = probabilities(lm, tok, prompt, list(validation["input_ids"]), causal, params["evaluate"]["batch_size"],
                              lm.config.prompt["calibrate"])
        scores = metrics.classification(list(validation["labels"]), [int(p.argmax()) for p in probs], names)
        curve = run_dir / "live" / "plots" / "metrics" / "eval" / f"{spec['metric']}.tsv"  # one point: no training
        curve.parent.mkdir(parents=True, exist_ok=True)
        curve.write_text(f"step\t{spec['metric']}\n0\t{scores[spec['metric']]}\n")
        return lm, training.Fitted(None, {f"eval_{spec['metric']}": scores[spec["metric"]]}, {}, run_dir)
    fitted = training.fit(run_dir, PromptModel(lm, tok, prompt, causal), cfg, ctx, train_set, validation,
                          collator(spec["type"], tok), metric=spec["metric"], greater_is_better=True,
                          compute_metrics=metrics.for_trainer(spec["type"], names), remove_unused_columns=False)
    return lm, fitted


def _recurrent(folder) -> bool:
    return json.loads((folder / "config.json").read_text())["model_type"] == RecurrentConfig.model_type


def run(params: dict, task: str, model: str, run: str) -> dict:
    parsed = Run.parse(task, model, run)
    few_shot = parsed.kind in ("_prompt", "_shots")
    cfg = training_config(params, "prompting", model) if few_shot else training_config(params, "finetune", model, task)
    if parsed.fraction < 1.0:  # the same number of steps as the run on all labels; early stopping decides
        cfg = cfg.replace(epochs=cfg.epochs / parsed.fraction)
    tok = load()
    data = load_from_disk(upstream(paths.path(paths.ENCODED, task=task), f"encode --task {task}"))
    adapted = RUN_KINDS[parsed.kind].start == paths.ADAPTED
    upstream(paths.path(RUN_KINDS[parsed.kind].start, task=task, model=model),
             f"adapt --task {task} --model {model}" if adapted else f"pretrain --model {model}")
    names = label_names(data["train"])
    results = [_one_seed(params, parsed, cfg, seed, tok, data, names) for seed in params["finetune"]["seeds"]]
    if not training.is_main_process():
        return {}
    metric, where = params["tasks"][task]["metric"], {"task": task, "model": model, "run": run}
    mean, std = metrics.mean_std([r["val_metric"] for r in results])
    first = results[0]
    write_json(paths.path(paths.FINETUNE_METRICS, **where), {
        f"val_{metric}": round(mean, 4), f"val_{metric}_std": round(std, 4),
        "val_loss": round(statistics.mean(r["val_loss"] for r in results), 4), "seeds": len(results),
        "steps": round(statistics.mean(r["steps"] for r in results)), "train_examples": first["train_examples"],
        "ulmfit": first["ulmfit"], "device": first["device"], "precision": first["precision"],
        **{k: first[k] for k in ("parameters", "trainable_parameters", "trainable_fraction")}})
    finals = {r["seed"]: paths.CHECKPOINTS / "finetune" / parsed.job / f"seed{r['seed']}" / "final" for r in results}
    with atomic_path(paths.path(paths.FINETUNED, **where), is_dir=True) as tmp:
        for seed, final in finals.items():
            shutil.copytree(final / "model", tmp / f"seed{seed}")
    with atomic_path(paths.path(paths.FINETUNE_PLOTS, **where), is_dir=True) as tmp:
        for seed, final in finals.items():
            shutil.copytree(final / "plots", tmp / f"seed{seed}", dirs_exist_ok=True)
    shutil.rmtree(paths.CHECKPOINTS / "finetune" / parsed.job, ignore_errors=True)
    print(f"finetune: {parsed.job}: validation {metric} {mean:.4f} ± {std:.4f} over {len(results)} seeds")
    seconds = sum(r["figures"].get("train_seconds", 0) for r in results)
    examples = sum(r["figures"].get("train_seconds", 0) * r["figures"].get("examples_per_second", 0) for r in results)
    return {"train_seconds": round(seconds, 1), "examples_per_second": round(examples / max(seconds, 1e-9), 1)}
