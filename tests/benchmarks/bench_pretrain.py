"""Benchmark (not a test): pretraining throughput of the recurrent language models, as tokens/s
and as a fraction of this machine's fp32 matmul peak measured in the same run.

    python tests/benchmarks/bench_pretrain.py [--steps 30] [--batch 32] [--block 128]

Model FLOPs count the matrix multiplies of a training step (forward + backward = 3 x forward):
per token and layer a GRU does 3 gate blocks and an LSTM 4, each 2*(E*H + H*H) FLOPs, then the
projection to the embedding width and the tied softmax over the vocabulary.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from scratchlm.models import RecurrentConfig, RecurrentForCausalLM

GATES = {"gru": 3, "lstm": 4, "rnn": 1}


def matmul_peak(n: int = 1024, repeats: int = 20) -> float:
    """Best fp32 matmul FLOP/s over a few timed batches (what the cores can do at best)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start))
    return best


def flops_per_token(config: RecurrentConfig) -> float:
    e, h, v = config.embedding_size, config.hidden_size, config.vocab_size
    recurrent = 0.0
    for layer in range(config.num_layers):
        width_in = e if layer == 0 else h
        recurrent += GATES[config.cell] * 2 * (width_in * h + h * h)
    head = (2 * h * e if h != e else 0) + 2 * e * v
    return 3 * (recurrent + head)  # training step: forward + backward (about twice the forward)


def tokens_per_second(config: RecurrentConfig, steps: int, batch: int, block: int) -> float:
    torch.manual_seed(0)
    model = RecurrentForCausalLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(5, config.vocab_size, (batch, block))

    def step():
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=4000)
    args = parser.parse_args()

    peak_before = matmul_peak()
    rows = []
    for cell in ("gru", "lstm"):
        config = RecurrentConfig(vocab_size=args.vocab, cell=cell, embedding_size=128, hidden_size=256, dropout=0.1)
        tps = tokens_per_second(config, args.steps, args.batch, args.block)
        rows.append((cell, tps, flops_per_token(config) * tps))
    peak = max(peak_before, matmul_peak())

    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    print("| model | tokens/s | model GFLOP/s | share of matmul peak |")
    print("|---|---|---|---|")
    for cell, tps, flops in rows:
        print(f"| {cell} (E128, H256, V{args.vocab}) | {tps:,.0f} | {flops / 1e9:.2f} | {100 * flops / peak:.1f}% |")


if __name__ == "__main__":
    main()
