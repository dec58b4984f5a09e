"""Language-model pretraining on the accelerator: each language model of the params (its sizes,
its pretraining batch, the packed block), its training step timed on the device in the precision
the pipeline trains in there (`precision: auto`: bf16 autocast on a GPU that has it), as tokens/s
and as a fraction of the device's matmul peak in that precision, measured in the same run; the
most memory the step held; the same step without each efficiency choice that applies (bf16
autocast, cuDNN's recurrent kernels, scaled-dot-product attention), so that what each buys is
measured beside it; and, for the encoder, the same step under torch.compile.

`make bench` runs it when CUDA is present; benchmarks/gpu_check.py runs it before the pipeline
(on the CPU at tiny sizes in its CI test). The step is the model's own forward and backward,
AdamW and gradient clipping, without Trainer: what the device can do for the model. Trainer's own
figure, evaluations and checkpoints included, is the pipeline's tokens/s beside it.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import NamedTuple

from . import flops
from .common import Outcome, Row, at_least, fmt

GOAL = 0.30  # of the bf16 matmul peak, for the Transformer LM
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class Sizes(NamedTuple):
    steps: int
    warmup: int
    peak_n: int
    peak_repeats: int
    compile: bool  # also time the encoder's step under torch.compile


GPU = Sizes(steps=20, warmup=5, peak_n=8192, peak_repeats=10, compile=True)
CPU = Sizes(steps=2, warmup=1, peak_n=256, peak_repeats=3, compile=False)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: str, precision: str, n: int, repeats: int) -> float:
    """The best matmul FLOP/s of three timed batches of n x n products in the precision."""
    import torch

    dtype = getattr(torch, DTYPES[precision])
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        _sync(device)
        best = max(best, 2 * n ** 3 * repeats / (time.perf_counter() - start))
    return best


class _Vocabulary:
    """What build_config needs of a tokenizer: its size and padding id."""

    def __init__(self, size: int):
        self.size, self.pad_token_id = size, 0

    def __len__(self) -> int:
        return self.size


def _model(spec: dict, vocab: int):
    from scratchlm.models import pretraining_model

    return pretraining_model({**spec, "checkpoint": None}, _Vocabulary(vocab))


def _inputs(config, batch: int, block: int, device: str, masked_share: float) -> dict:
    """A batch of random token ids, drawn as text's are, by Zipf's law (the rank-r id with
    weight 1/r: what a sampled softmax draws its classes from; uniform ids before 6b66238, so
    bench records across it differ in that too); for a masked LM, labels at a random share of
    the positions."""
    import torch

    generator = torch.Generator().manual_seed(0)
    zipf = 1 / torch.arange(1, config.vocab_size - 4, dtype=torch.float64)
    ids = 5 + torch.multinomial(zipf, batch * block, replacement=True, generator=generator).view(batch, block)
    if config.model_type != "bert":
        return {"input_ids": ids.to(device), "labels": ids.to(device)}
    masked = torch.rand(batch, block, generator=generator) < masked_share
    return {"input_ids": ids.to(device), "labels": torch.where(masked, ids, -100).to(device)}


def seconds_per_step(model, inputs: dict, device: str, precision: str, sizes: Sizes) -> float:
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = (torch.autocast(device, dtype=getattr(torch, DTYPES[precision])) if precision != "fp32"
                else contextlib.nullcontext())

    def step():
        with autocast:
            loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(sizes.warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(sizes.steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / sizes.steps


def _peak_memory_mb(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1) if device == "cuda" else None


def _without(choice: str, model, device: str):
    """The same step without one of the choices: the autocast (fp32 instead: the caller picks the
    precision), cuDNN's recurrent kernels (PyTorch's own), the attention kernel training picks for
    the device (the other one: eager on a GPU, SDPA on the CPU), the sampled softmax (the full
    one), or dropout (a recipe's choice, not an efficiency one: measured for what it costs)."""
    import torch

    if choice == "cudnn":
        return torch.backends.cudnn.flags(enabled=False)
    if choice in ATTENTION:
        return _attention(model, ATTENTION[choice])
    if choice == "dropout":
        return _no_dropout(model)
    if choice == "sampled_softmax":
        return _full_softmax(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _full_softmax(model):
    drawn = model.sampled_softmax
    model.sampled_softmax = 0
    try:
        yield
    finally:
        model.sampled_softmax = drawn


ATTENTION = {"sdpa": "eager", "eager": "sdpa"}  # a kernel and the one a step without it uses


@contextlib.contextmanager
def _attention(model, kernel: str):
    chosen = model.config._attn_implementation
    model.set_attn_implementation(kernel)
    try:
        yield
    finally:
        model.set_attn_implementation(chosen)


@contextlib.contextmanager
def _no_dropout(model):
    import torch

    from scratchlm.models import with_dropout

    rates = {m: m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    with_dropout(model, 0.0)
    try:
        yield
    finally:
        for m, p in rates.items():
            m.p = p


def _dropout(model) -> bool:
    import torch

    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


def ablations(model, inputs: dict, device: str, precision: str, sizes: Sizes) -> dict:
    """Tokens/s of the step without each choice that applies to the model, measured beside the
    step with all of them (the speed-up each buys, or the cost of dropout, is the ratio)."""
    choices = [precision] if precision != "fp32" else []  # without the autocast: fp32
    if model.config.model_type == "bert":
        choices.append(model.config._attn_implementation)
    elif device == "cuda":
        choices.append("cudnn")
    if getattr(model, "sampled_softmax", 0):
        choices.append("sampled_softmax")
    if _dropout(model):
        choices.append("dropout")
    tokens, found = inputs["input_ids"].numel(), {}
    for choice in choices:
        with _without(choice, model, device):
            seconds = seconds_per_step(model, inputs, device, "fp32" if choice == precision else precision, sizes)
        found[f"without_{choice}"] = round(tokens / seconds)
    return found


def sampled_classes(k: int, vocabulary: int, labels) -> float | None:
    """The classes a sampled softmax of `k` draws multiplies per position on these labels: the
    expected number of distinct classes among its draws (models/recurrent.py's `draw_chances`,
    summed), padded as the loss pads them (`DRAWN_COLUMNS`), plus the position's own; None for
    a full softmax (k = 0)."""
    from scratchlm.models.recurrent import DRAWN_COLUMNS, draw_chances

    if not k:
        return None
    distinct = float(draw_chances(labels[labels != -100].flatten().cpu(), vocabulary, k).sum())
    return math.ceil(distinct / DRAWN_COLUMNS) * DRAWN_COLUMNS + 1


def one_model(name: str, params: dict, device: str, precision: str, peak: float, sizes: Sizes) -> dict:
    """Tokens/s, model FLOP/s, their share of the peak and the step's memory, for one LM."""
    import torch

    from scratchlm.models.bert import use_training_attention
    from scratchlm.training_config import training_config

    spec = params["pretrain"]["models"][name]
    batch, block = training_config(params, "pretrain", name).batch_size, params["pack"]["block_size"]
    model = _model(spec, params["tokenizer"]["vocab_size"]).to(device).train()
    use_training_attention(model, device)  # the kernel training picks (training.fit)
    share = spec.get("mlm_probability", 0.15)
    inputs = _inputs(model.config, batch, block, device, share)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    drawn = sampled_classes(getattr(model, "sampled_softmax", 0), model.config.vocab_size, inputs["labels"])
    per_token = flops.per_token(model.config, block, share, drawn)
    rate = batch * block / seconds_per_step(model, inputs, device, precision, sizes)
    found = {"batch": batch, "block": block, "parameters": sum(p.numel() for p in model.parameters()),
             "flops_per_token": per_token, "tokens_per_second": round(rate),
             "model_flops_per_second": round(per_token * rate), "mfu": round(per_token * rate / peak, 4),
             "peak_memory_mb": _peak_memory_mb(device)}
    found["tokens_per_second_without"] = ablations(model, inputs, device, precision, sizes)
    if sizes.compile and model.config.model_type == "bert":
        found["compiled"] = _compiled(model, inputs, device, precision, sizes, per_token, peak)
    del model, inputs
    if device == "cuda":
        torch.cuda.empty_cache()
    return found


def _compiled(model, inputs, device, precision, sizes, per_token, peak) -> dict:
    """The same step under torch.compile (compilation not timed), or why it could not run."""
    import torch

    try:
        rate = inputs["input_ids"].numel() / seconds_per_step(torch.compile(model), inputs, device, precision, sizes)
    except Exception as e:  # an unsupported op or backend: reported, not fatal to the benchmark
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    return {"tokens_per_second": round(rate), "mfu": round(per_token * rate / peak, 4)}


def measure(params: dict, device: str = "cuda", sizes: Sizes = GPU) -> Outcome:
    import torch

    from scratchlm.devices import pick_precision

    precision = pick_precision(params["precision"], device)
    peak = matmul_peak(device, precision, sizes.peak_n, sizes.peak_repeats)
    out = Outcome(detail={"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                          "precision": precision, f"matmul_peak_{precision}": round(peak), "models": {}})
    out.summary[f"gpu_matmul_peak_{precision}"] = round(peak)
    for name in params["pretrain"]["models"]:
        m = out.detail["models"][name] = one_model(name, params, device, precision, peak, sizes)
        for key in ("mfu", "tokens_per_second", "peak_memory_mb"):
            out.summary[f"gpu_pretrain_{key}_{name}"] = m[key]
        transformer = params["pretrain"]["models"][name]["arch"] == "bert"
        out.rows.append(Row(f"{name} LM pretraining step on {out.detail['device']}, {precision}: model FLOP/s vs "
                            f"{precision} matmul peak (batch {m['batch']}x{m['block']}, {m['parameters']:,} params)",
                            fmt(m["model_flops_per_second"] / 1e12, " TFLOP/s"), fmt(peak / 1e12, " TFLOP/s"),
                            m["mfu"], f"≥ {GOAL}" if transformer else "—",
                            at_least(m["mfu"], GOAL) if transformer else None, f"gpu_pretrain_mfu_{name}"))
    return out


def compiled_steps(params: dict, device: str, sizes: Sizes, peak: float) -> dict:
    """The encoders' steps under torch.compile, after the uncompiled ones (benchmarks/gpu_check.py
    measures these last: compiling takes a minute)."""
    import torch

    from scratchlm.devices import pick_precision
    from scratchlm.models.bert import use_training_attention
    from scratchlm.training_config import training_config

    precision, found = pick_precision(params["precision"], device), {}
    for name, spec in params["pretrain"]["models"].items():
        if spec["arch"] != "bert":
            continue
        batch, block = training_config(params, "pretrain", name).batch_size, params["pack"]["block_size"]
        model = _model(spec, params["tokenizer"]["vocab_size"]).to(device).train()
        use_training_attention(model, device)
        share = spec["mlm_probability"]
        inputs = _inputs(model.config, batch, block, device, share)
        found[name] = _compiled(model, inputs, device, precision, sizes, flops.per_token(model.config, block, share),
                                peak)
        del model, inputs
        if device == "cuda":
            torch.cuda.empty_cache()
    return found
