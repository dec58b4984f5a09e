"""Language-model pretraining throughput of the recurrent models (the pipeline's `gru` spec with
each cell, GRU and LSTM; its vocabulary size, batch size and block size), as tokens/s and as model FLOP/s,
a fraction of this machine's fp32 matmul peak measured in the same run at the same threads.

Model FLOPs count the matrix multiplies of a training step (flops.py). The step is the model's own
forward and backward, AdamW and gradient clipping, without Trainer around it: what the cores can
do for the model.

The MFU keys are fp32 training against the fp32 peak. Where the pipeline trains in bf16 (params
`precision: auto` on a CPU with AVX512-BF16 or AMX), the same step under autocast is timed too:
its tokens/s beside fp32's, and in the detail its model FLOP/s as a fraction of the bf16 peak.

Then each language model as the pipeline builds and trains it (benchmarks/gpu.py's step, on the
CPU): the demo's GRU, the real-cpu preset's LSTM and a Transformer sized for a CPU hour (BERT
below), in the precision training picks here, against the matmul peak in that precision
(`pretrain_mfu_peak_<model>`), each beside the same step without each of its choices (fp32, the
other attention kernel, no dropout, the full softmax for a sampled one); and the Transformer's tokens/s over the LSTM's
(`pretrain_tokens_per_hour_ratio`: the same cores, so the same ratio per CPU-hour).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import flops
from .common import ROOT, Outcome, Row, at_least, fmt

MODELS = ("gru", "lstm")
GOAL = 0.6
PEAK_GOAL = {"bert": 0.40}     # of the matmul peak in the training precision
RATIO_GOAL = 3.0               # the Transformer's tokens per CPU-hour over the real-cpu LSTM's
# The Transformer LM sized for a CPU hour (width 256, 4 layers, sequence 128: the pipeline's
# block), with batch shapes that keep the matrix multiplies large, and no dropout in pretraining
# (Cramming's choice for a single pass over the text; fine-tuning keeps 0.1); the candidate the
# bake-off weighs against the recurrent models before a preset adopts it.
BERT = {"arch": "bert", "hidden_size": 256, "num_layers": 4, "num_heads": 4, "intermediate_size": 1024,
        "pretraining_dropout": 0.0, "training": {"batch_size": 64}}
# quick mode: the same models at toy widths
TINY_SPECS = {"recurrent": {"embedding_size": 16, "hidden_size": 32},
              "bert": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}}
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class Sizes:
    steps: int
    peak_n: int                  # square matrix side for the matmul peak
    peak_repeats: int
    tiny: dict | None = None     # overrides of the params (model widths, vocabulary, batch, block)


FULL = Sizes(steps=30, peak_n=1024, peak_repeats=20)
QUICK = Sizes(steps=2, peak_n=256, peak_repeats=5,
              tiny={"embedding_size": 16, "hidden_size": 32, "vocab_size": 500, "batch": 4, "block": 16})


def matmul_peak(n: int, repeats: int, dtype: str = "fp32") -> float:
    """Best matmul FLOP/s over a few timed batches (what the cores can do at best)."""
    import torch

    a, b = (torch.randn(n, n).to(getattr(torch, DTYPES[dtype])) for _ in range(2))
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start))
    return best


def tokens_per_second(config, steps: int, batch: int, block: int, precision: str = "fp32") -> float:
    """Training tokens/s; precision bf16 or fp16 runs the forward under CPU autocast, as Trainer does."""
    import contextlib

    import torch

    from scratchlm.models import RecurrentForCausalLM

    torch.manual_seed(0)
    model = RecurrentForCausalLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(5, config.vocab_size, (batch, block))

    def step():
        autocast = precision != "fp32"
        with torch.autocast("cpu", dtype=getattr(torch, DTYPES[precision])) if autocast else contextlib.nullcontext():
            loss = model(ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch * block / (time.perf_counter() - start)


def _config(params: dict, model: str, tiny: dict | None):
    """The `gru` spec of params with `model`'s cell (widths and vocabulary from the tiny overrides
    in quick mode); AWD's dropouts are left out: they are regularisers, not the step's work."""
    from scratchlm.models import RecurrentConfig

    spec, tiny = params["pretrain"]["models"]["gru"], tiny or {}
    return RecurrentConfig(vocab_size=tiny.get("vocab_size", params["tokenizer"]["vocab_size"]), cell=model,
                           embedding_size=tiny.get("embedding_size", spec["embedding_size"]),
                           hidden_size=tiny.get("hidden_size", spec["hidden_size"]), num_layers=spec["num_layers"],
                           dropout=spec["dropout"], bidirectional=spec["bidirectional"])


def pipeline_models(params: dict, tiny: dict | None) -> list[tuple[str, dict]]:
    """(model, validated params holding it) for each LM the second section measures: the demo's
    GRU, the real-cpu preset's LSTM and the BERT above beside it (toy sizes in quick mode)."""
    import copy

    from scratchlm import params as params_module
    from scratchlm import presets

    raw = params_module.read_yaml(ROOT / "params.yaml")
    real = copy.deepcopy(raw)
    presets.merge(real, params_module.read_yaml(presets.PRESETS_DIR / "real-cpu.yaml"))
    real["pretrain"]["models"]["bert"] = copy.deepcopy(BERT)
    chosen = [("gru", raw), ("lstm", real), ("bert", real)]
    if tiny:
        for name, p in chosen:
            spec = p["pretrain"]["models"][name]
            spec.update(TINY_SPECS[spec["arch"]])
            spec.pop("training", None)
            p["tokenizer"]["vocab_size"], p["pack"]["block_size"] = tiny["vocab_size"], tiny["block"]
            p["pretrain"]["training"]["batch_size"] = tiny["batch"]
    return [(name, params_module.validate(p)) for name, p in chosen]


def in_training_precision(params: dict, sizes: Sizes) -> Outcome:
    """The pipeline's LMs in the precision training picks here, against that precision's peak."""
    from scratchlm.devices import pick_precision

    from . import gpu

    precision = pick_precision(params["precision"], "cpu")
    step = gpu.Sizes(steps=sizes.steps, warmup=3, peak_n=sizes.peak_n, peak_repeats=sizes.peak_repeats,
                     compile=False)
    peak = gpu.matmul_peak("cpu", precision, sizes.peak_n, sizes.peak_repeats)
    models = {name: gpu.one_model(name, p, "cpu", precision, peak, step)
              for name, p in pipeline_models(params, sizes.tiny)}
    peak = max(peak, gpu.matmul_peak("cpu", precision, sizes.peak_n, sizes.peak_repeats))  # before and after
    out = Outcome(detail={"precision": precision, f"matmul_peak_{precision}": round(peak), "models": models})
    for name, m in models.items():
        m["mfu"] = out.summary[f"pretrain_mfu_peak_{name}"] = round(m["model_flops_per_second"] / peak, 4)
        goal = PEAK_GOAL.get(name)
        without = ", ".join(f"without {k.removeprefix('without_')} {v / 1e3:.1f}k"
                            for k, v in m["tokens_per_second_without"].items())
        out.rows.append(Row(f"{name.upper()} LM pretraining step as the pipeline trains it, {precision}: model FLOP/s "
                            f"vs {precision} matmul peak (batch {m['batch']}x{m['block']}, {m['parameters']:,} "
                            f"params; {m['tokens_per_second'] / 1e3:.1f}k tokens/s; {without})",
                            fmt(m["model_flops_per_second"] / 1e9, " GFLOP/s", 1), fmt(peak / 1e9, " GFLOP/s", 1),
                            m["mfu"], f"≥ {goal}" if goal else "—", at_least(m["mfu"], goal) if goal else None,
                            f"pretrain_mfu_peak_{name}"))
    ratio = out.summary["pretrain_tokens_per_hour_ratio"] = round(
        models["bert"]["tokens_per_second"] / models["lstm"]["tokens_per_second"], 2)
    out.rows.append(Row(f"Transformer LM tokens per CPU-hour vs the real-cpu preset's LSTM ({precision}, the same "
                        "cores, one run)", fmt(models["bert"]["tokens_per_second"] * 3600 / 1e6, "M tokens/h", 1),
                        fmt(models["lstm"]["tokens_per_second"] * 3600 / 1e6, "M tokens/h", 1), ratio,
                        f"≥ {RATIO_GOAL:g}", at_least(ratio, RATIO_GOAL), "pretrain_tokens_per_hour_ratio"))
    return out


def measure(params: dict, sizes: Sizes) -> Outcome:
    from scratchlm.devices import pick_precision

    tiny = sizes.tiny or {}
    batch = tiny.get("batch", params["pretrain"]["training"]["batch_size"])
    block = tiny.get("block", params["pack"]["block_size"])
    precision = pick_precision(params["precision"], "cpu")  # what the pipeline trains with here
    peak_before = matmul_peak(sizes.peak_n, sizes.peak_repeats)
    models = {}
    for name in MODELS:
        config = _config(params, name, sizes.tiny)
        tps, per_token = tokens_per_second(config, sizes.steps, batch, block), flops.recurrent(config)
        models[name] = {"embedding_size": config.embedding_size, "hidden_size": config.hidden_size,
                        "num_layers": config.num_layers, "vocab_size": config.vocab_size,
                        "flops_per_token": per_token, "tokens_per_second": round(tps),
                        "model_flops_per_second": round(per_token * tps)}
        if precision != "fp32":
            models[name][f"tokens_per_second_{precision}"] = round(
                tokens_per_second(config, sizes.steps, batch, block, precision))
    peak = max(peak_before, matmul_peak(sizes.peak_n, sizes.peak_repeats))  # before and after: the best of both
    out = Outcome(detail={"matmul_peak_flops_per_second": round(peak), "matmul_n": sizes.peak_n, "batch": batch,
                          "block": block, "steps": sizes.steps, "pipeline_precision": precision, "models": models})
    if precision != "fp32":
        out.detail[f"matmul_peak_flops_per_second_{precision}"] = round(
            matmul_peak(sizes.peak_n, sizes.peak_repeats, precision))
    for name, m in models.items():
        mfu = out.summary[f"pretrain_mfu_{name}"] = round(m["model_flops_per_second"] / peak, 4)
        m["mfu"] = mfu
        shape = f"E{m['embedding_size']} H{m['hidden_size']} V{m['vocab_size']}, batch {batch}x{block}"
        out.rows.append(Row(f"{name.upper()} LM pretraining, fp32: model FLOP/s vs fp32 matmul peak ({shape})",
                            fmt(m["model_flops_per_second"] / 1e9, " GFLOP/s", 1), fmt(peak / 1e9, " GFLOP/s", 1),
                            mfu, f"≥ {GOAL}", at_least(mfu, GOAL), f"pretrain_mfu_{name}"))
        if precision != "fp32":
            fast = m[f"tokens_per_second_{precision}"]
            m[f"mfu_{precision}"] = round(m["flops_per_token"] * fast
                                          / out.detail[f"matmul_peak_flops_per_second_{precision}"], 4)
            out.rows.append(Row(f"{name.upper()} LM pretraining tokens/s: {precision} autocast (the pipeline's "
                                f"precision here) vs fp32", fmt(fast / 1e3, " k tok/s", 1),
                                fmt(m["tokens_per_second"] / 1e3, " k tok/s", 1),
                                round(fast / m["tokens_per_second"], 2), "—", None))
    section = in_training_precision(params, sizes)
    out.summary.update(section.summary)
    out.detail["in_training_precision"] = section.detail
    out.rows += section.rows
    return out
