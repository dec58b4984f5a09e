"""Stage `pack`: tokenize the pretraining corpus and cut it into language-modelling blocks
(data/blocks/<corpus>): every text closed by [SEP], all concatenated, cut into `block_size`
tokens; the ragged tail is dropped. Texts run across block boundaries, as in run_clm.py."""

from __future__ import annotations

from itertools import chain
from pathlib import Path

from .io import atomic_path, upstream


def blocks_dir(corpus: str) -> Path:
    return Path("data/blocks") / corpus


def _blocks(core, block_size: int):
    def fn(batch):
        ids = list(chain.from_iterable(e.ids for e in core.encode_batch_fast(batch["text"])))
        n = len(ids) // block_size * block_size
        return {"input_ids": [ids[i:i + block_size] for i in range(0, n, block_size)]}
    return fn


def pack(dd, tok, block_size: int):
    from datasets import Features, Sequence, Value

    from .tokenize import encoder

    return dd.map(_blocks(encoder(tok), block_size), batched=True, batch_size=1000,
                  remove_columns=dd["train"].column_names, features=Features({"input_ids": Sequence(Value("int32"))}),
                  desc="pack")


def run(params: dict) -> None:
    from datasets import load_from_disk

    from .data import raw_dir
    from .tokenizer import load

    corpus = params["pretrain"]["corpus"]
    out = pack(load_from_disk(upstream(raw_dir(corpus), f"data --dataset {corpus}")), load(), params["pack"]["block_size"])
    with atomic_path(blocks_dir(corpus), is_dir=True) as tmp:
        out.save_to_disk(str(tmp))
    print(f"pack: {corpus}: " + ", ".join(f"{s} {len(out[s])} blocks" for s in out))
