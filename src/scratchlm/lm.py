"""Language-model training helpers: the masked-LM collator and validation masking, the unigram
baseline, state saturation, and the samples that show what a model learned."""

from __future__ import annotations

import math
from collections import Counter
from itertools import chain

import torch
from datasets import Dataset, Features, Sequence, Value
from tokenizers import processors
from transformers import DataCollatorForLanguageModeling, GenerationConfig, PreTrainedTokenizerFast

PROMPTS = ["I watched The", "Overall, it was", "The plot was", "Shares of"]
MASKED = ["Overall, it was [MASK].", "The plot was not [MASK] at all.", "Shares of [MASK] fell 3 percent.",
          "Police in [MASK] said he was arrested."]
SATURATED = 0.9


def unigram_perplexity(train_blocks, valid_blocks, vocab_size: int) -> float:
    """Perplexity of an add-one unigram model: the floor a language model must clearly beat."""
    counts = Counter(t for block in train_blocks for t in block)
    total = sum(counts.values()) + vocab_size
    tokens = [t for block in valid_blocks for t in block[1:]]
    nll = -sum(math.log((counts[t] + 1) / total) for t in tokens) / max(1, len(tokens))
    return math.exp(nll)


def samples(model, tok, prompts: list[str], seed: int, max_new_tokens: int = 40) -> str:
    """A few sampled continuations, to show in the report what the LM learned."""
    torch.manual_seed(seed)
    model.eval()
    lines = []
    for prompt in prompts:
        ids = tok(prompt, return_tensors="pt")["input_ids"][:, :-1].to(model.device)  # drop the closing [SEP]
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=True, top_k=20,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id)
        lines.append(f"- **{prompt}** → {tok.decode(out[0, ids.size(1):], skip_special_tokens=True)}")
    return "\n".join(lines) + "\n"


def fill_masks(model, tok, prompts: list[str], top: int = 5) -> str:
    """The encoder's top guesses for a masked word, to show what masked LM learned."""
    model.eval()
    lines = []
    for prompt in prompts:
        enc = tok(prompt, return_tensors="pt").to(model.device)
        where = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
        with torch.no_grad():
            best = model(**enc).logits[0, where].topk(top).indices.tolist()
        lines.append(f"- **{prompt}** → " + ", ".join(tok.decode([i]).strip() for i in best))
    return "\n".join(lines) + "\n"


class MaskedOnce:
    """MLM collator that leaves already-masked rows (with `labels`) as they are: the validation
    set is masked once, so its loss is comparable across evaluations."""

    def __init__(self, tok, probability: float):
        self.mask = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=probability)

    def __call__(self, rows):
        if "labels" in rows[0]:
            return {k: torch.tensor([r[k] for r in rows]) for k in ("input_ids", "labels")}
        return self.mask(rows)


def mask_validation(ds, tok, probability: float, seed: int):
    collate = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=probability, seed=seed)

    def fn(batch):
        out = collate([{"input_ids": ids} for ids in batch["input_ids"]])
        return {"input_ids": out["input_ids"].tolist(), "labels": out["labels"].tolist()}

    return ds.map(fn, batched=True, desc="mask validation")


def state_saturation(lm, blocks, batch_size: int = 32, max_blocks: int = 256) -> float:
    """Share of a recurrent LM's state values beyond +-0.9 on some validation blocks. A saturated
    tanh unit passes little gradient (1 - h^2 < 0.19), which is what fine-tuning must push through."""
    ids = torch.tensor(blocks["input_ids"][:max_blocks])
    was_training = lm.training
    lm.eval()
    with torch.no_grad():
        states = [lm.model(ids[i:i + batch_size].to(lm.device)).last_hidden_state.abs().float().cpu()
                  for i in range(0, len(ids), batch_size)]
    lm.train(was_training)
    return round(float((torch.cat(states) > SATURATED).float().mean()), 4)


def blocks_of(rows, block_size: int) -> Dataset:
    """Language-modelling blocks from encoded texts (each framed by [CLS] ... [SEP]): all
    concatenated and cut into `block_size` tokens, the ragged tail dropped, as `pack` does."""
    ids = list(chain.from_iterable(rows))
    n = len(ids) // block_size * block_size
    return Dataset.from_dict({"input_ids": [ids[i:i + block_size] for i in range(0, n, block_size)]},
                             features=Features({"input_ids": Sequence(Value("int32"))}))


def bounded(ds, n: int, seed: int):
    """At most `n` rows: a seeded subset, so that an evaluation costs the same on any corpus size."""
    return ds if len(ds) <= n else ds.shuffle(seed=seed).select(range(n))


def for_generation(model, tok) -> PreTrainedTokenizerFast:
    """Make a causal checkpoint ready for `generate()` and `pipeline("text-generation")`: a
    tokenizer that opens a prompt with [CLS] (the LM's start of text) and does not close it with
    [SEP], which the LM learned as the end of a text, and a generation config that stops there.
    The training tokenizer frames every text [CLS] ... [SEP], which is right for the blocks and
    for classification, and wrong for a prompt to continue."""
    core = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer.__class__.from_str(
        tok.backend_tokenizer.to_str()), **tok.special_tokens_map)
    core.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tok.cls_token} $A", pair=f"{tok.cls_token} $A $B", special_tokens=[(tok.cls_token, tok.cls_token_id)])
    core.bos_token, core.eos_token = tok.cls_token, tok.sep_token
    model.config.bos_token_id, model.config.eos_token_id = tok.cls_token_id, tok.sep_token_id
    model.generation_config = GenerationConfig(bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                                               pad_token_id=tok.pad_token_id, max_new_tokens=40)
    return core
