"""Stage `pretrain`: train one language model from scratch on the packed corpus blocks.

Recurrent models learn causal LM on fixed blocks; the hidden state starts at zero in every block
(no carry-over between blocks): blocks are shuffled for SGD, so the previous block in a batch is
not the text's predecessor, and truncated BPTT with carried state would need ordered streams.
The BERT-style encoder learns masked LM (BERT's 15%, 80/10/10); its validation blocks are
masked once with a fixed seed, so every evaluation scores the same positions.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from .io import atomic_path, upstream, write_json, write_text


def model_dir(model: str) -> Path:
    return Path("models/pretrain") / model


def results_dir(model: str) -> Path:
    return Path("results/pretrain") / model


def unigram_perplexity(train_blocks, valid_blocks, vocab_size: int) -> float:
    """Perplexity of an add-one unigram model: the floor a language model must clearly beat."""
    counts = Counter(t for block in train_blocks for t in block)
    total = sum(counts.values()) + vocab_size
    tokens = [t for block in valid_blocks for t in block[1:]]
    nll = -sum(math.log((counts[t] + 1) / total) for t in tokens) / max(1, len(tokens))
    return math.exp(nll)


def samples(model, tok, prompts: list[str], seed: int, max_new_tokens: int = 40) -> str:
    """A few sampled continuations, to show in the report what the LM learned."""
    import torch

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
    import torch

    model.eval()
    lines = []
    for prompt in prompts:
        enc = tok(prompt, return_tensors="pt").to(model.device)
        where = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
        with torch.no_grad():
            best = model(**enc).logits[0, where].topk(top).indices.tolist()
        lines.append(f"- **{prompt}** → " + ", ".join(tok.decode([i]).strip() for i in best))
    return "\n".join(lines) + "\n"


PROMPTS = ["I watched The", "Overall, it was", "The plot was", "Shares of"]
MASKED = ["Overall, it was [MASK].", "The plot was not [MASK] at all.", "Shares of [MASK] fell 3 percent.",
          "Police in [MASK] said he was arrested."]


class MaskedOnce:
    """MLM collator that leaves already-masked rows (with `labels`) as they are: the validation
    set is masked once, so its loss is comparable across evaluations."""

    def __init__(self, tok, probability: float):
        from transformers import DataCollatorForLanguageModeling

        self.mask = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=probability)

    def __call__(self, rows):
        import torch

        if "labels" in rows[0]:
            return {k: torch.tensor([r[k] for r in rows]) for k in ("input_ids", "labels")}
        return self.mask(rows)


def mask_validation(ds, tok, probability: float, seed: int):
    from transformers import DataCollatorForLanguageModeling

    collate = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=probability, seed=seed)

    def fn(batch):
        out = collate([{"input_ids": ids} for ids in batch["input_ids"]])
        return {"input_ids": out["input_ids"].tolist(), "labels": out["labels"].tolist()}

    return ds.map(fn, batched=True, desc="mask validation")


SATURATED = 0.9


def state_saturation(lm, blocks, batch_size: int = 32, max_blocks: int = 256) -> float:
    """Share of a recurrent LM's state values beyond +-0.9 on some validation blocks. A saturated
    tanh unit passes little gradient (1 - h^2 < 0.19), which is what fine-tuning must push through."""
    import torch

    ids = torch.tensor(blocks["input_ids"][:max_blocks])
    was_training = lm.training
    lm.eval()
    with torch.no_grad():
        states = [lm.model(ids[i:i + batch_size].to(lm.device)).last_hidden_state.abs().float().cpu()
                  for i in range(0, len(ids), batch_size)]
    lm.train(was_training)
    return round(float((torch.cat(states) > SATURATED).float().mean()), 4)


def run(params: dict, model: str) -> dict:
    from datasets import load_from_disk
    from transformers import DataCollatorForLanguageModeling, set_seed

    from . import training
    from .models import is_causal, pretraining_model
    from .pack import blocks_dir
    from .tokenizer import load

    from .params import pretraining

    spec, cfg, seed = params["pretrain"]["models"][model], pretraining(params, model), params["seed"]
    device = training.pick_device(params["device"])
    precision = training.pick_precision(params["precision"], device)
    set_seed(seed)
    tok = load()
    blocks = load_from_disk(upstream(blocks_dir(params["pretrain"]["corpus"]), "pack"))
    lm = pretraining_model(spec, tok, f"pretrain.models.{model}")
    causal = is_causal(spec)
    if causal:
        collator, validation = DataCollatorForLanguageModeling(tok, mlm=False), blocks["validation"]
    else:
        collator = MaskedOnce(tok, spec["mlm_probability"])
        validation = mask_validation(blocks["validation"], tok, spec["mlm_probability"], seed)

    stamp = [spec, cfg, seed, params["pretrain"]["corpus"], params["processes"], precision]
    run_dir = training.checkpoint_dir(f"pretrain/{model}", {"params": stamp, "data": blocks["train"]._fingerprint})
    args = training.arguments(cfg, run_dir, seed, device, precision, "eval_loss", False)
    trainer = training.trainer_class()(model=lm, args=args, train_dataset=blocks["train"], eval_dataset=validation,
                                       data_collator=collator,
                                       callbacks=training.callbacks(cfg, run_dir / "live", resume=True,
                                                                    key=training.settings_key(params, "pretrain", model)))
    recurrent = lm.config.model_type == "scratchlm-recurrent"
    saturation_at_init = state_saturation(lm, blocks["validation"]) if recurrent else None
    # a named checkpoint is loaded instead of pretrained: it is only scored on our validation blocks
    figures = {} if spec.get("checkpoint") else training.train(trainer, run_dir)
    val = trainer.evaluate()
    if not training.is_main_process():  # the other workers helped train; rank 0 writes
        return {}

    block_size = len(blocks["train"][0]["input_ids"])
    metrics = {
        "objective": "causal" if causal else "masked",
        "val_loss": round(val["eval_loss"], 4), "val_perplexity": round(math.exp(val["eval_loss"]), 3),
        "unigram_perplexity": round(unigram_perplexity(blocks["train"]["input_ids"],
                                                       blocks["validation"]["input_ids"], len(tok)), 3),
        "steps": trainer.state.global_step, "device": device, "precision": precision,
        **training.count_parameters(lm),
    }
    if recurrent:  # bounded states: how many sit where gradients vanish, before and after pretraining
        metrics.update(state_saturation_init=saturation_at_init,
                       state_saturation=state_saturation(lm, blocks["validation"]))
    with atomic_path(model_dir(model), is_dir=True) as tmp:
        trainer.save_model(str(tmp))
        tok.save_pretrained(str(tmp))
    out = results_dir(model)
    with atomic_path(out / "plots", is_dir=True) as tmp:
        training.copy_curves(run_dir / "live", tmp)
    write_text(out / "samples.md", samples(lm, tok, PROMPTS, seed) if causal else fill_masks(lm, tok, MASKED))
    write_json(out / "metrics.json", metrics)
    training.finish(run_dir)
    print(f"pretrain: {model}: validation perplexity {metrics['val_perplexity']} "
          f"(unigram {metrics['unigram_perplexity']}) after {metrics['steps']} steps")
    if figures:
        figures["tokens_per_second"] = round(figures["examples_per_second"] * block_size, 1)
    return figures
