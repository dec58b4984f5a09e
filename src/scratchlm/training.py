"""What every training stage shares: the device and precision, seeds, `TrainingArguments` from a
`TrainingConfig`, checkpoints that survive a kill, DVCLive curves, the divergence guard, and the
skeleton that runs them (`start`, `fit`, `finish`): pretraining and fine-tuning differ only in
the model, the data and what they write."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import torch
import torch.distributed as dist
import transformers
from dvclive import Live
from dvclive.utils import standardize_metric_name
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices
from transformers.trainer_utils import get_last_checkpoint

from . import console, paths
from .atomic import atomic_path
from .devices import keep_freed_memory, pick_device, pick_precision
from .errors import ScratchError
from .models.bert import use_training_attention
from .training_config import TrainingConfig


@dataclass(frozen=True)
class Context:
    """Where and how a training stage runs: chosen once, before the model is built."""
    device: str
    precision: str
    seed: int
    processes: int


def start(params: dict, seed: int | None = None) -> Context:
    """Pick the device and precision, and seed every generator (the model's initialisation follows)."""
    device = pick_device(params["device"])
    if device == "cpu":
        keep_freed_memory()
    ctx = Context(device, pick_precision(params["precision"], device), params["seed"] if seed is None else seed,
                  params["processes"])
    set_seed(ctx.seed)
    return ctx


def code_digest() -> str:
    """Hash of the package's source and the training libraries' versions: a checkpoint written by
    other code is not the same computation."""
    digest = hashlib.sha256(f"{torch.__version__} {transformers.__version__}".encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def weights_digest(folder: Path) -> str:
    """Identity of the pretrained weights a run starts from (a content hash: a DVC checkout
    changes mtimes, not content)."""
    f = folder / "model.safetensors"
    if not f.exists():
        raise ScratchError(f"{f}: pretrained model missing; run the pretrain stage first "
                           f"(snakemake --cores all, or dvc repro)")
    digest = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_dir(run: str, fingerprint: dict) -> Path:
    """Trainer's checkpoint folder for a run; wiped when the run's inputs or code changed since it
    was written, so `resume` only ever continues the same computation. `finish` removes it."""
    path = paths.CHECKPOINTS / run
    if not is_main_process():  # rank 0 prepares the folder; `train` waits for it
        return path
    stamp = path / "fingerprint.json"
    text = json.dumps({**fingerprint, "code": code_digest()}, sort_keys=True, default=str)
    if path.exists() and (not stamp.exists() or stamp.read_text() != text):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    stamp.write_text(text)
    return path


def last_checkpoint(path: Path) -> str | None:
    return get_last_checkpoint(str(path)) if path.exists() else None


def world_size() -> int:
    """Training processes of this run (torchrun sets WORLD_SIZE in each worker)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 writes the outputs; the other workers only train."""
    return os.environ.get("RANK", "0") == "0"


def arguments(cfg: TrainingConfig, output_dir: Path, ctx: Context, metric: str, greater_is_better: bool,
              **overrides) -> TrainingArguments:
    """Trainer's arguments; `batch_size` is the global batch, split over the training processes;
    the context's precision turns on Trainer's autocast."""
    world = world_size()
    batch = cfg.batch_size // world
    if world > 1 and ctx.device == "cpu":
        overrides["ddp_backend"] = "gloo"
    if ctx.device == "cuda":  # batches in pinned memory (Trainer's default) copied without blocking the step
        overrides.setdefault("accelerator_config", {"non_blocking": True})
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
        learning_rate=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type=cfg.scheduler, max_grad_norm=cfg.grad_clip,
        eval_strategy="steps", eval_steps=cfg.eval_steps, save_strategy="steps", save_steps=cfg.eval_steps,
        logging_steps=max(1, cfg.eval_steps // 4), save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model=metric, greater_is_better=greater_is_better,
        seed=ctx.seed, data_seed=ctx.seed, use_cpu=ctx.device == "cpu", report_to=[], dataloader_num_workers=0,
        bf16=ctx.precision == "bf16", fp16=ctx.precision == "fp16", **overrides)


class EpochSeededLengthSampler(LengthGroupedSampler):
    """transformers' length-grouped order, drawn from (seed, epoch) alone. Its own sampler draws
    from the global RNG when an epoch starts, whose state a resumed run cannot have at that point
    (it restores the RNG mid-epoch), so a killed and resumed run saw other batches than a whole one."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:  # accelerate's data loader calls it as each epoch starts
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class LengthListTrainer(Trainer):
    """transformers' Trainer with its length-grouped sampler seeded per epoch (see above) and
    given the `length` column as a list: datasets 5 returns a lazy Column there, which the
    sampler indexes one row at a time while it sorts (see docs/performance.md)."""

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if not isinstance(sampler, LengthGroupedSampler):
            return sampler
        lengths = sampler.lengths if isinstance(sampler.lengths, list) else sampler.lengths[:]
        return EpochSeededLengthSampler(sampler.batch_size, lengths, self.args.seed)


class LiveCurves(TrainerCallback):
    """Trainer's logs to DVCLive, one row per optimizer step. (transformers' DVCLiveCallback
    counts log calls as steps, so train and eval rows of one step land at different x.)"""

    def __init__(self, live_dir: Path, resume: bool):
        # dvcyaml/save_dvc_exp off: the curves are declared in our dvc.yaml, and DVC runs the experiments
        self.live = (Live(dir=str(live_dir), resume=resume, dvcyaml=None, save_dvc_exp=False, report=None)
                     if is_main_process() else None)
        self.ended = False  # the final evaluate() of the restored best model is not a curve point

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.live is not None and not self.ended:
            self.live.step = state.global_step
            for key, value in (logs or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.live.log_metric(standardize_metric_name(key, "dvclive.huggingface"), value)

    def on_train_end(self, args, state, control, **kwargs):
        self.ended = True
        if self.live is not None:
            self.live.end()


class Progress(TrainerCallback):
    """The job's line on the console (scratchlm.console): step, loss and time left every
    console.EVERY_S seconds, and one when training ends."""

    def __init__(self, seed: int):
        self.seed = seed
        self.began = self.last = 0.0
        self.first = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.began = self.last = time.monotonic()
        self.first = state.global_step  # a resumed run's earlier steps are not this process's pace

    def on_log(self, args, state, control, logs=None, **kwargs):
        now = time.monotonic()
        if "loss" not in (logs or {}) or now - self.last < console.EVERY_S:
            return
        self.last = now
        left = (now - self.began) / max(state.global_step - self.first, 1) * (state.max_steps - state.global_step)
        console.say(f"seed {self.seed}, step {state.global_step}/{state.max_steps}, loss {logs['loss']:.4g}, "
                    f"at most {console.duration(left)} left")

    def on_train_end(self, args, state, control, **kwargs):
        console.say(f"seed {self.seed} trained: {state.global_step} steps in "
                    f"{console.duration(time.monotonic() - self.began)}")


class FiniteGradients(TrainerCallback):
    """Stops training at the first step whose gradients are not finite (what a NaN or inf loss
    leaves), naming the step, the learning rate and the params keys to change, before the
    optimizer spreads NaN into every weight. Under fp16 the grad scaler skips such steps itself."""

    def __init__(self, cfg: TrainingConfig):
        self.cfg = cfg

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if args.fp16 or not grads:
            return
        norms = torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads])
        if not bool(torch.isfinite(norms).all()):
            lr = max(group["lr"] for group in optimizer.param_groups)
            raise ScratchError(f"training diverged: the loss or its gradients are not finite at step "
                               f"{state.global_step + 1} (learning rate {lr:.3g}); lower {self.cfg.key('lr')} "
                               f"or set {self.cfg.key('grad_clip')}, then rerun")


class EarlyStopping(EarlyStoppingCallback):
    """transformers' early stopping, counting only the evaluations from step `start` on: until
    gradual unfreezing has released the last layer group, a run has not shown what it can do,
    and stopping it then is what stalled the pretrained runs at chance."""

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float = 0.0, start: int = 0):
        super().__init__(early_stopping_patience, early_stopping_threshold)
        self.start = start

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        if state.global_step >= self.start:
            super().on_evaluate(args, state, control, metrics, **kwargs)

    def state(self) -> dict:
        found = super().state()
        found["args"]["start"] = self.start
        return found


def callbacks(cfg: TrainingConfig, live_dir: Path, resume: bool, seed: int, patience_from: int = 0) -> list:
    """DVCLive curves, the console's progress line, the divergence guard and early stopping when
    asked for."""
    found = [LiveCurves(live_dir, resume), Progress(seed), FiniteGradients(cfg)]
    if cfg.early_stopping_patience > 0:
        found.append(EarlyStopping(cfg.early_stopping_patience, start=patience_from))
    return found


def train(trainer, run_dir: Path) -> dict:
    """Train, resuming from the newest checkpoint of an interrupted run of the same inputs.
    Returns the seconds and examples/s of the steps this process ran."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # rank 0 has wiped or kept the checkpoints: every worker sees the same ones
    resume = last_checkpoint(run_dir)
    if resume:
        print(f"resuming from {resume}")
    first = int(resume.rsplit("-", 1)[1]) if resume else 0
    began = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - began
    examples = (trainer.state.global_step - first) * trainer.args.train_batch_size * trainer.args.world_size
    return {"train_seconds": round(seconds, 1), "examples_per_second": round(examples / max(seconds, 1e-9), 1)}


@dataclass
class Fitted:
    """A trained run: its Trainer (model restored to the best checkpoint), the validation scores
    of that checkpoint (and of the model before training, when asked for), the training figures
    for the timing file, and its checkpoint folder."""
    trainer: Trainer
    validation: dict
    figures: dict
    run_dir: Path
    before: dict | None = None
    history: tuple = ()  # Trainer's log during training (not the final scoring of the restored best)

    def selected(self, selection: Selection) -> dict:
        return selected(list(self.history), selection)


def checkpoints(run: str, cfg: TrainingConfig, ctx: Context, **fingerprint) -> Path:
    """The checkpoint folder of a run, keyed by everything it depends on (see checkpoint_dir)."""
    return checkpoint_dir(run, {**fingerprint, "training": asdict(cfg), "seed": ctx.seed,
                                "processes": ctx.processes, "precision": ctx.precision})


class Selection(NamedTuple):
    """How a run's best checkpoint is chosen: the validation metric (Trainer's name for it), its
    direction, what computes it, and the step from which early stopping counts evaluations."""
    metric: str = "eval_loss"
    greater_is_better: bool = False
    compute_metrics: Callable | None = None
    patience_from: int = 0


def fit(run_dir: Path, model, cfg: TrainingConfig, ctx: Context, train_set, eval_set, collator, *,
        selection: Selection = Selection(), optimizers=(None, None), extra_callbacks: tuple = (),
        skip_training: bool = False, score_first: bool = False, **argument_overrides) -> Fitted:
    """The training skeleton: Trainer in the run's checkpoint folder (`checkpoints()`), train
    (resuming a killed run), and the validation scores of the checkpoint `selection` picks.
    `score_first`: also score the model before training (kept with the checkpoints, so a resumed
    run reports the same)."""
    args = arguments(cfg, run_dir, ctx, selection.metric, selection.greater_is_better, **argument_overrides)
    use_training_attention(model, ctx.device)
    trainer = LengthListTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                                data_collator=collator, compute_metrics=selection.compute_metrics,
                                optimizers=optimizers,
                                callbacks=[*callbacks(cfg, run_dir / "live", True, ctx.seed, selection.patience_from),
                                           *extra_callbacks])
    before = _scored_first(trainer, run_dir) if score_first else None
    figures = {} if skip_training else train(trainer, run_dir)
    # the log before the final scoring: that re-scores the restored best checkpoint at the last step,
    # an entry that ties the best and would hide where the curve stood when training stopped
    history = tuple(trainer.state.log_history)
    return Fitted(trainer, trainer.evaluate(), figures, run_dir, before, history)


def selected(history: list[dict], selection: Selection) -> dict:
    """Where the run's checkpoint was selected (step and epoch of its best evaluation), how many
    evaluations it had, and whether it stopped while still improving: its best evaluation is its
    last, and better than the one two before (a rising curve cut by the budget, where a longer run
    would have gone on; a flat or turned curve is not)."""
    evals = [(e["step"], e["epoch"], e[selection.metric]) for e in history if selection.metric in e]
    if not evals:
        return {"selected_step": 0, "selected_epoch": 0.0, "evaluations": 0, "still_improving": False}
    sign = 1 if selection.greater_is_better else -1
    best = max(range(len(evals)), key=lambda i: (sign * evals[i][2], -i))  # the first of equal scores
    rising = len(evals) >= 3 and best == len(evals) - 1 and sign * (evals[-1][2] - evals[-3][2]) > 0
    return {"selected_step": evals[best][0], "selected_epoch": round(evals[best][1], 3), "evaluations": len(evals),
            "still_improving": rising}


def _scored_first(trainer: Trainer, run_dir: Path) -> dict:
    """The validation scores of the untrained model (an evaluation loop that logs no curve point)."""
    stamp = run_dir / "before.json"
    if stamp.exists():  # a resumed run: the same scores as before it was killed
        return json.loads(stamp.read_text())
    # every process runs the loop (it gathers across them); rank 0 can only write the stamp once
    # all have joined, so all took this branch
    loop = trainer.evaluation_loop(trainer.get_eval_dataloader(), "before training", metric_key_prefix="eval")
    if is_main_process():
        stamp.write_text(json.dumps(loop.metrics))
    return loop.metrics


def finish(fitted: Fitted, model_dir: Path | str, plots_dir: Path | str, save) -> None:
    """Rank 0 writes the model (through `save(folder)`) and the curves, each atomically; then the
    run's checkpoints go (they exist to resume a killed run)."""
    with atomic_path(model_dir, is_dir=True) as tmp:
        save(tmp)
    with atomic_path(plots_dir, is_dir=True) as tmp:
        copy_curves(fitted.run_dir / "live", tmp)
    shutil.rmtree(fitted.run_dir, ignore_errors=True)
    for folder in Path(fitted.run_dir).parents:  # and the folders above it it leaves empty (pretrain/<model>/)
        if folder == paths.CHECKPOINTS or not folder.is_relative_to(paths.CHECKPOINTS):
            break
        try:
            folder.rmdir()
        except OSError:  # another run's checkpoints are in it
            break


# DVCLive logs every number Trainer reports; these are the curves worth plotting
CURVES = ("loss", "learning_rate", "grad_norm", "eval/*")
NOT_CURVES = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time")


def copy_curves(live_dir: Path, dest: Path) -> None:
    """The DVCLive step-wise curves (plots/metrics/**.tsv) go into `dest`, a DVC plots output."""
    src = live_dir / "plots" / "metrics"
    for pattern in CURVES:
        for tsv in src.glob(f"{pattern}.tsv"):
            if tsv.stem not in NOT_CURVES:
                target = dest / tsv.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(tsv, target)


def count_parameters(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable_parameters": trainable,
            "trainable_fraction": round(trainable / total, 6) if total else 0.0}
