"""Stage `finetune`: fine-tune one model on one task in one run, once per seed in
`finetune.seeds`: a method (`full`, `frozen`, `scratch`, see finetuning.py), LoRA, a method on a
share of the training labels (`full-0.1`), or the adaptation ablation (`full-general`).

A run starts from the task-adapted model (models/adapt/<task>/<model>/seed<s>), the ablation runs
from the general pretrained one; with several pretraining seeds, each fine-tuning seed starts from
its own LM (dag.lm_seed). ULMFiT's options apply to the recurrent models' full runs
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
from dataclasses import dataclass
from pathlib import Path

from datasets import load_from_disk

from .. import metrics, paths, training, ulmfit
from ..atomic import atomic_path, upstream, write_json
from ..dag import RUN_KINDS, TRAINING_INPUTS, Run, lm_seed, lookup
from ..finetuning import build_model, collator, per_class, save, subset
from ..methods import Method, method
from ..models import RecurrentConfig, is_causal, language_model
from ..prompting import Prompt, PromptModel, probabilities
from ..tokenization import label_names, load
from ..training_config import TrainingConfig, training_config

RESULT = "result.json"  # a finished seed's validation scores, beside its model


@dataclass(frozen=True)
class SeedRun:
    """One seed of one fine-tuning run: everything its training reads, gathered once."""
    params: dict  # the stage's params (declared.py)
    run: Run
    method: Method
    cfg: TrainingConfig
    ctx: training.Context
    tok: object
    names: list[str]  # the task's label names, in id order
    train_set: object
    validation: object
    start: Path  # the model it starts from
    run_dir: Path  # its checkpoints
    ulmfit: bool  # ULMFiT's options apply

    @property
    def task(self) -> dict:
        return self.params["tasks"][self.run.task]

    @property
    def selection(self) -> training.Selection:
        """The task's validation metric picks the checkpoint."""
        return training.Selection(f"eval_{self.task['metric']}", True,
                                  metrics.for_trainer(self.task["type"], self.names))


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


def _prepare(params: dict, run: Run, cfg: TrainingConfig, seed: int, tok, data, names: list[str]) -> SeedRun:
    """A seed's run: its device and seeds, its labelled rows, its start and its checkpoint folder
    (keyed by everything it reads, so a resumed run only ever continues the same computation)."""
    chosen = method(run.method)
    ctx = training.start(params, seed)
    start = _start(params, run, seed)
    train_set, validation = _labelled(data, run, seed)
    use_ulmfit = chosen.ulmfit and _recurrent(start) and ulmfit.enabled(params["finetune"]["ulmfit"])
    reads = [lookup(params, key.format(task=run.task, model=run.model)) for key in chosen.reads]
    run_dir = training.checkpoints(f"finetune/{run.job}/seed{seed}", cfg, ctx, data=train_set._fingerprint,
                                   model=training.weights_digest(start), params=[params["tasks"][run.task], *reads])
    return SeedRun(params, run, chosen, cfg, ctx, tok, names, train_set, validation, start, run_dir, use_ulmfit)


def _one_seed(s: SeedRun) -> dict:
    """Train one seed of the run, or read it back if a killed job finished it: its validation
    scores, training figures and the folder of its model and curves."""
    final = s.run_dir / "final"
    if (final / RESULT).exists():
        print(f"finetune: {s.run.job}: seed {s.ctx.seed} finished before; kept")
        return json.loads((final / RESULT).read_text())
    net, fitted = _with_head(s) if s.method.head else _prompted(s)
    if not training.is_main_process():  # the other workers helped train; rank 0 writes
        return {}
    metric = s.task["metric"]
    val = fitted.validation
    result = {"seed": s.ctx.seed, "val_metric": val[f"eval_{metric}"], "val_loss": val.get("eval_loss"),
              "steps": fitted.trainer.state.global_step if fitted.trainer else 0,
              "train_examples": len(s.train_set) if s.method.trained else 0,
              "ulmfit": s.ulmfit, "device": s.ctx.device, "precision": s.ctx.precision, "figures": fitted.figures,
              **fitted.selected(s.selection), **training.count_parameters(net)}
    with atomic_path(final, is_dir=True) as tmp:
        save(net, tmp / "model", s.method)
        s.tok.save_pretrained(str(tmp / "model"))
        (tmp / "plots").mkdir()
        training.copy_curves(s.run_dir / "live", tmp / "plots")
        (tmp / RESULT).write_text(json.dumps(result))
    print(f"finetune: {s.run.job}: seed {s.ctx.seed}: validation {metric} {result['val_metric']:.4f}")
    return result


def _labelled(data, run: Run, seed: int):
    """The run's training rows (a share, or k per class) and validation rows (k per class for a
    few-shot run, as LM-BFF selects: a validation set as small as the training set)."""
    if run.shots:
        return per_class(data["train"], run.shots, seed), per_class(data["validation"], run.shots, seed)
    return subset(data["train"], run.fraction, seed), data["validation"]


def _with_head(s: SeedRun):
    """A task head over the model (full, frozen, scratch, lora), trained with Trainer."""
    ft = s.params["finetune"]
    net = build_model(s.method, s.start, s.task["type"], s.names, ft["pooling"], s.ctx.seed,
                      ft["lora"] if s.method.adapter else None, s.task["head"], s.tok)
    optimizers, extra, patience_from = (_ulmfit(net, ft["ulmfit"], s.cfg, len(s.train_set)) if s.ulmfit
                                        else ((None, None), [], 0))
    selection = s.selection._replace(patience_from=patience_from)
    fitted = training.fit(s.run_dir, net, s.cfg, s.ctx, s.train_set, s.validation, collator(s.task["type"], s.tok),
                          selection=selection, optimizers=optimizers, extra_callbacks=extra,
                          train_sampling_strategy="group_by_length", remove_unused_columns=False)
    return net, fitted


def _prompted(s: SeedRun):
    """`prompt`: the LM as it is, scored on validation; `pet`: the LM trained on the verbalizers'
    scores. Either way the saved model is the LM with its prompt in its config."""
    spec, options = s.task, s.params["finetune"]["prompting"]
    model_spec = s.params["pretrain"]["models"][s.run.model]
    lm = language_model(s.start, model_spec)
    prompt = Prompt.build(s.tok, spec["prompt"]["template"], spec["prompt"]["verbalizers"], s.names)
    calibrate = options["calibrate"] if not s.method.trained else "none"  # a trained prompt learns its own prior
    lm.config.prompt = {**spec["prompt"], "labels": s.names, "calibrate": calibrate}
    causal = is_causal(model_spec)
    if not s.method.trained:  # zero-shot: scored on validation as evaluate scores the test split
        probs = probabilities(lm, s.tok, prompt, list(s.validation["input_ids"]), causal,
                              s.params["evaluate"]["batch_size"], calibrate)
        scores = metrics.classification(list(s.validation["labels"]), [int(p.argmax()) for p in probs], s.names)
        curve = s.run_dir / "live" / "plots" / "metrics" / "eval" / f"{spec['metric']}.tsv"  # one point
        curve.parent.mkdir(parents=True, exist_ok=True)
        curve.write_text(f"step\t{spec['metric']}\n0\t{scores[spec['metric']]}\n")
        return lm, training.Fitted(None, {f"eval_{spec['metric']}": scores[spec["metric"]]}, {}, s.run_dir)
    fitted = training.fit(s.run_dir, PromptModel(lm, s.tok, prompt, causal), s.cfg, s.ctx, s.train_set, s.validation,
                          collator(spec["type"], s.tok), selection=s.selection, remove_unused_columns=False)
    return lm, fitted


def _mean_or_none(values: list) -> float | None:
    """The mean of a figure every seed has; None (null in the metrics file) where none has it: a
    zero-shot prompt has no validation loss."""
    return None if None in values else round(statistics.mean(values), 4)


def _start(params: dict, run: Run, seed: int) -> Path:
    """The model a seed of the run starts from: its LM's, adapted to the task or general, as its
    kind says."""
    where = {"task": run.task, "model": run.model, "seed": lm_seed(params, seed)}
    adapted = RUN_KINDS[run.kind].start == paths.ADAPTED
    made_by = (f"adapt --task {run.task} --model {run.model} --seed {where['seed']}" if adapted
               else f"pretrain --model {run.model} --seed {where['seed']}")
    return Path(upstream(paths.path(RUN_KINDS[run.kind].start, **where), made_by))


def _recurrent(folder) -> bool:
    return json.loads((folder / "config.json").read_text())["model_type"] == RecurrentConfig.model_type


def _settings(sections: str, model: str) -> dict | None:
    """The model's training layers as the `settings` stage wrote them, where its kind of run reads
    them from that file (dag.TRAINING_INPUTS)."""
    if paths.SETTINGS not in TRAINING_INPUTS[sections]:
        return None
    return json.loads(Path(upstream(paths.path(paths.SETTINGS, model=model), f"settings --model {model}")).read_text())


def run(params: dict, task: str, model: str, run: str) -> dict:
    parsed = Run.parse(task, model, run)
    kind = RUN_KINDS[parsed.kind]
    cfg = training_config(params, kind.training, model, task, _settings(kind.training, model), parsed.method)
    if parsed.fraction < 1.0:  # the same number of steps as the run on all labels; early stopping decides
        cfg = cfg.replace(epochs=cfg.epochs / parsed.fraction)
    tok = load()
    data = load_from_disk(upstream(paths.path(paths.ENCODED, task=task), f"encode --task {task}"))
    for seed in params["finetune"]["seeds"]:  # every LM the seeds start from is there, before any training
        _start(params, parsed, seed)
    names = label_names(data["train"])
    results = [_one_seed(_prepare(params, parsed, cfg, seed, tok, data, names)) for seed in params["finetune"]["seeds"]]
    if not training.is_main_process():
        return {}
    metric, where = params["tasks"][task]["metric"], {"task": task, "model": model, "run": run}
    mean, std = metrics.mean_std([r["val_metric"] for r in results])
    first = results[0]
    write_json(paths.path(paths.FINETUNE_METRICS, **where), {
        f"val_{metric}": round(mean, 4), f"val_{metric}_std": round(std, 4),
        "val_loss": _mean_or_none([r["val_loss"] for r in results]), "seeds": len(results),
        "steps": round(statistics.mean(r["steps"] for r in results)), "train_examples": first["train_examples"],
        # where each seed's checkpoint was selected, and how many stopped while their curve still rose
        "selected_step": round(statistics.mean(r["selected_step"] for r in results)),
        "selected_epoch": round(statistics.mean(r["selected_epoch"] for r in results), 3),
        "improving_seeds": sum(r["still_improving"] for r in results),
        "lr": cfg.lr,  # the rate this arm trained with (tasks.<task>.method_overrides can set it per method)
        "lm_seeds": {str(r["seed"]): lm_seed(params, r["seed"]) for r in results},  # the LM each seed started from
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
