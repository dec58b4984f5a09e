"""Stage `tokenizer`: train a byte-pair-encoding tokenizer from scratch on the corpus's train
split and save it as a `PreTrainedTokenizerFast` under models/tokenizer.

BPE, not WordPiece: WordPieceTrainer gave a different vocabulary in each process here, BPE the
same one every time, and every later hash depends on this file. Metaspace pre-tokenization
keeps word boundaries in the pieces, so decoding restores spaces and NER words map to
sub-words through `word_ids()`.
"""

from __future__ import annotations

from datasets import load_from_disk

from .. import paths
from ..atomic import atomic_path, upstream
from ..tokenization import SPECIALS, from_checkpoint


def texts(ds, batch_size: int = 1000):
    """Yield batches of plain text from a dataset with a `text` or a `tokens` column."""
    column = "text" if "text" in ds.column_names else "tokens"
    for start in range(0, len(ds), batch_size):
        batch = ds[start:start + batch_size][column]
        yield batch if column == "text" else [" ".join(t) for t in batch]


def train(ds, vocab_size: int, min_frequency: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIALS["unk_token"]))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIALS.values()), show_progress=False)
    tok.train_from_iterator(texts(ds), trainer=trainer, length=len(ds))
    cls, sep = SPECIALS["cls_token"], SPECIALS["sep_token"]
    # [CLS] opens and [SEP] closes every text: BERT's layout, and BOS/EOS for the causal LMs
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIALS)


def run(params: dict) -> None:
    cfg = params["tokenizer"]
    if cfg["checkpoint"]:
        tok = from_checkpoint(cfg["checkpoint"], cfg["revision"], "tokenizer.checkpoint")
        source = f"taken from {cfg['checkpoint']}"
    else:
        corpus = paths.path(paths.RAW, dataset=cfg["corpus"])
        ds = load_from_disk(upstream(corpus, f"data --dataset {cfg['corpus']}"))["train"]
        tok = train(ds, cfg["vocab_size"], cfg["min_frequency"])
        source = f"trained on {len(ds)} texts of '{cfg['corpus']}'"
    with atomic_path(paths.TOKENIZER, is_dir=True) as tmp:
        tok.save_pretrained(str(tmp))
    print(f"tokenizer: vocabulary of {len(tok)} {source}")
