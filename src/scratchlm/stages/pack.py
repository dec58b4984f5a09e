"""Stage `pack`: encode the pretraining corpus and cut it into language-modelling blocks
(data/blocks/<corpus>): every text closed by [SEP], all concatenated, cut into `block_size`
tokens; the ragged tail is dropped. Texts run across block boundaries, as in run_clm.py."""

from __future__ import annotations

from itertools import chain

from datasets import Features, Sequence, Value, load_from_disk

from .. import paths
from ..atomic import atomic_path, upstream
from ..errors import ScratchError
from ..tokenization import encoder, load


def _blocks(core, block_size: int):
    def fn(batch):
        ids = list(chain.from_iterable(e.ids for e in core.encode_batch_fast(batch["text"])))
        n = len(ids) // block_size * block_size
        return {"input_ids": [ids[i:i + block_size] for i in range(0, n, block_size)]}
    return fn


def pack(dd, tok, block_size: int):
    return dd.map(_blocks(encoder(tok), block_size), batched=True, batch_size=1000,
                  remove_columns=dd["train"].column_names, features=Features({"input_ids": Sequence(Value("int32"))}),
                  desc="pack")


def run(params: dict) -> None:
    corpus = params["pretrain"]["corpus"]
    raw = load_from_disk(upstream(paths.path(paths.RAW, dataset=corpus), f"data --dataset {corpus}"))
    block_size = params["pack"]["block_size"]
    out = pack(raw, load(), block_size)
    for split in ("train", "validation"):  # what pretraining reads
        if len(out[split]) == 0:
            raise ScratchError(f"params.yaml: pack.block_size = {block_size} is longer than the whole {split} split of "
                               f"'{corpus}': not one block; lower pack.block_size, or give the corpus more text")
    with atomic_path(paths.path(paths.BLOCKS, corpus=corpus), is_dir=True) as tmp:
        out.save_to_disk(str(tmp))
    print(f"pack: {corpus}: " + ", ".join(f"{s} {len(out[s])} blocks" for s in out))
