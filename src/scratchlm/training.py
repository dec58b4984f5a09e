"""What pretraining and fine-tuning share: device choice, seeds, `TrainingArguments` from a
`training` params section, checkpoints that survive a kill, and DVCLive curves."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from .errors import ScratchError

CHECKPOINTS = Path("checkpoints")


def pick_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ScratchError("params.yaml: device = 'cuda' but no CUDA device is visible; set device: auto or cpu")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def native_bf16(device: str) -> bool:
    """Whether the hardware multiplies bf16 natively: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX (elsewhere oneDNN emulates bf16, so auto keeps fp32)."""
    import torch

    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    caps = torch.cpu.get_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def pick_precision(requested: str, device: str) -> str:
    """The training precision: fp32, or autocast to bf16/fp16 (weights and optimizer stay fp32).
    auto: bf16 where the hardware has it (an AVX512-BF16 EPYC: 1.5x per recurrent training step,
    measured), fp16 on older GPUs, fp32 otherwise."""
    if requested == "auto":
        if native_bf16(device):
            return "bf16"
        return "fp16" if device == "cuda" else "fp32"
    if requested == "fp16" and device != "cuda":
        raise ScratchError(f"params.yaml: precision = 'fp16' needs a CUDA device (this run is on {device}); "
                           "set precision: auto, bf16 or fp32")
    if requested == "bf16" and device == "cuda" and not native_bf16(device):
        raise ScratchError("params.yaml: precision = 'bf16' but this GPU does not support bf16; "
                           "set precision: auto, fp16 or fp32")
    return requested


def code_digest() -> str:
    """Hash of the package's source and the training libraries' versions: a checkpoint written by
    other code is not the same computation."""
    import torch
    import transformers

    digest = hashlib.sha256(f"{torch.__version__} {transformers.__version__}".encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def checkpoint_dir(run: str, fingerprint: dict) -> Path:
    """Trainer's checkpoint folder for a run; wiped when the run's inputs or code changed since it
    was written, so `resume` only ever continues the same computation. `finish` removes it."""
    path = CHECKPOINTS / run
    if not is_main_process():  # rank 0 prepares the folder; `train` waits for it
        return path
    stamp = path / "fingerprint.json"
    text = json.dumps({**fingerprint, "code": code_digest()}, sort_keys=True)
    if path.exists() and (not stamp.exists() or stamp.read_text() != text):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    stamp.write_text(text)
    return path


def finish(run_dir: Path) -> None:
    """A finished run's checkpoints are scratch: remove them (they exist to resume a killed run)."""
    if is_main_process():
        shutil.rmtree(run_dir, ignore_errors=True)


def last_checkpoint(path: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(path)) if path.exists() else None


def world_size() -> int:
    """Training processes of this run (torchrun sets WORLD_SIZE in each worker)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 writes the outputs; the other workers only train."""
    return os.environ.get("RANK", "0") == "0"


def check_processes(params: dict, stage: str, model: str) -> None:
    """The batch is split over the processes, so that more processes train the same model."""
    from .params import finetuning, pretraining

    n = params["processes"]
    batch = (pretraining if stage == "pretrain" else finetuning)(params, model)["batch_size"]
    if batch % n:
        key = settings_key(params, stage, model, "batch_size")
        raise ScratchError(f"params.yaml: {key}.batch_size = {batch} does not split over processes = {n}; "
                           f"make it a multiple of {n}")


def arguments(cfg: dict, output_dir: Path, seed: int, device: str, precision: str, metric: str,
              greater_is_better: bool, **overrides):
    """Trainer's arguments; `batch_size` is the global batch, split over the training processes;
    `precision` (pick_precision's) turns on Trainer's autocast."""
    from transformers import TrainingArguments

    world = world_size()
    batch = cfg["batch_size"] // world
    if world > 1 and device == "cpu":
        overrides["ddp_backend"] = "gloo"
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=cfg["epochs"], max_steps=cfg["max_steps"],
        per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
        learning_rate=cfg["lr"], weight_decay=cfg["weight_decay"], warmup_steps=cfg["warmup_ratio"],
        lr_scheduler_type=cfg["scheduler"], max_grad_norm=cfg["grad_clip"],
        eval_strategy="steps", eval_steps=cfg["eval_steps"], save_strategy="steps", save_steps=cfg["eval_steps"],
        logging_steps=max(1, cfg["eval_steps"] // 4), save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model=metric, greater_is_better=greater_is_better,
        seed=seed, data_seed=seed, use_cpu=device == "cpu", report_to=[], dataloader_num_workers=0,
        bf16=precision == "bf16", fp16=precision == "fp16", **overrides)


def trainer_class():
    """transformers' Trainer, its length-grouped sampler given the `length` column as a list:
    datasets 5 returns a lazy Column there, which the sampler indexes one row at a time while
    it sorts (2.4 s before the first step on SST-2's 67k rows, measured; 0.1 s as a list)."""
    from transformers import Trainer

    class LengthListTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            lengths = getattr(sampler, "lengths", None)
            if lengths is not None and not isinstance(lengths, list):
                sampler.lengths = lengths[:]
            return sampler

    return LengthListTrainer


def _live_curves(live_dir: Path, resume: bool):
    """Trainer's logs to DVCLive, one row per optimizer step. (transformers' DVCLiveCallback
    counts log calls as steps, so train and eval rows of one step land at different x.)"""
    from dvclive import Live
    from dvclive.utils import standardize_metric_name
    from transformers import TrainerCallback

    # dvcyaml/save_dvc_exp off: the curves are declared in our dvc.yaml, and DVC runs the experiments
    live = Live(dir=str(live_dir), resume=resume, dvcyaml=None, save_dvc_exp=False, report=None) if is_main_process() else None

    class LiveCurves(TrainerCallback):
        ended = False  # the final evaluate() of the restored best model is not a curve point

        def on_log(self, args, state, control, logs=None, **kwargs):
            if live is not None and not self.ended:
                live.step = state.global_step
                for key, value in (logs or {}).items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        live.log_metric(standardize_metric_name(key, "dvclive.huggingface"), value)

        def on_train_end(self, args, state, control, **kwargs):
            self.ended = True
            if live is not None:
                live.end()

    return LiveCurves()


def settings_key(params: dict, stage: str, model: str, setting: str = "lr") -> str:
    """The params section a model's `setting` comes from: its own override when it has one."""
    if stage == "pretrain":
        own = params["pretrain"]["models"][model].get("training", {})
        return f"pretrain.models.{model}.training" if setting in own else "pretrain.training"
    return f"finetune.overrides.{model}" if setting in params["finetune"]["overrides"].get(model, {}) else "finetune.training"


def finite_gradients(key: str):
    """Stops training at the first step whose gradients are not finite (what a NaN or inf loss
    leaves), naming the step, the learning rate and the params `key` to change, before the
    optimizer spreads NaN into every weight. Under fp16 the grad scaler skips such steps itself."""
    import torch
    from transformers import TrainerCallback

    class FiniteGradients(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            if args.fp16 or not grads:
                return
            norms = torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads])
            if not bool(torch.isfinite(norms).all()):
                lr = max(group["lr"] for group in optimizer.param_groups)
                raise ScratchError(f"training diverged: the loss or its gradients are not finite at step "
                                   f"{state.global_step + 1} (learning rate {lr:.3g}); lower {key}.lr "
                                   f"or set {key}.grad_clip, then rerun")

    return FiniteGradients()


def callbacks(cfg: dict, live_dir: Path, resume: bool, key: str) -> list:
    """DVCLive curves, the divergence guard (`key`: the params section of these settings) and
    early stopping when asked for."""
    from transformers import EarlyStoppingCallback

    found = [_live_curves(live_dir, resume), finite_gradients(key)]
    if cfg["early_stopping_patience"] > 0:
        found.append(EarlyStoppingCallback(early_stopping_patience=cfg["early_stopping_patience"]))
    return found


def train(trainer, run_dir: Path) -> dict:
    """Train, resuming from the newest checkpoint of an interrupted run of the same inputs.
    Returns the seconds and examples/s of the steps this process ran."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # rank 0 has wiped or kept the checkpoints: every worker sees the same ones
    resume = last_checkpoint(run_dir)
    if resume:
        print(f"resuming from {resume}")
    first = int(resume.rsplit("-", 1)[1]) if resume else 0
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    examples = (trainer.state.global_step - first) * trainer.args.train_batch_size * trainer.args.world_size
    return {"train_seconds": round(seconds, 1), "examples_per_second": round(examples / max(seconds, 1e-9), 1)}


# DVCLive logs every number Trainer reports; these are the curves worth plotting
CURVES = ("loss", "learning_rate", "grad_norm", "eval/*")
NOT_CURVES = ("runtime", "samples_per_second", "steps_per_second")


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
