"""Stage `adapt`: ULMFiT's middle step. A pretrained model continues its own language-model
objective (causal LM for the recurrent models, masked LM for BERT) on one task's training text,
labels unseen, before it is fine-tuned on that task. Howard & Ruder measured what it buys on
IMDb: 6.99% validation error without this step, 5.00% with it.

The text is the task's encoded training split, each example framed by [CLS] ... [SEP] as in
pretraining, concatenated and cut into `pack.block_size` blocks; the task's validation split,
likewise, scores the model before and after (at most `adapt.eval_blocks` blocks). With
`adapt.enabled: false` the general model passes through unchanged, so fine-tuning reads the same
path either way; its perplexity on the task's text is still reported.
"""

from __future__ import annotations

import math
import shutil

from datasets import load_from_disk
from transformers import DataCollatorForLanguageModeling

from .. import lm, paths, training
from ..atomic import atomic_path, upstream, write_json
from ..errors import ScratchError
from ..models import is_causal, language_model
from ..tokenization import load
from ..training_config import training_config


def run(params: dict, task: str, model: str, seed: str) -> dict:
    spec, cfg, options = params["pretrain"]["models"][model], training_config(params, "adapt", model), params["adapt"]
    ctx = training.start(params, int(seed))  # the LM's own seed; the global one picks what it is scored on
    where = {"task": task, "model": model, "seed": seed}
    tok = load()
    encoded = load_from_disk(upstream(paths.path(paths.ENCODED, task=task), f"encode --task {task}"))
    pretrained = paths.path(paths.PRETRAINED, model=model, seed=seed)
    block_size = params["pack"]["block_size"]
    train_blocks = lm.blocks_of(encoded["train"]["input_ids"], block_size)
    valid_blocks = lm.bounded(lm.blocks_of(encoded["validation"]["input_ids"], block_size),
                                  options["eval_blocks"], params["seed"])
    for split, blocks in (("train", train_blocks), ("validation", valid_blocks)):
        if len(blocks) == 0:
            raise ScratchError(f"params.yaml: pack.block_size = {block_size} is longer than the whole {split} text of "
                               f"task {task}: not one block to adapt on; lower pack.block_size, or set adapt.enabled: "
                               f"false")
    net = language_model(upstream(pretrained, f"pretrain --model {model} --seed {seed}"), spec)
    if is_causal(spec):
        collator, validation = DataCollatorForLanguageModeling(tok, mlm=False), valid_blocks
    else:
        collator = lm.MaskedOnce(tok, spec["mlm_probability"])
        validation = lm.mask_validation(valid_blocks, tok, spec["mlm_probability"], params["seed"])
    run_dir = training.checkpoints(f"adapt/{task}/{model}/seed{seed}", cfg, ctx,
                                   model=training.weights_digest(pretrained), data=encoded["train"]._fingerprint,
                                   block_size=block_size, enabled=options["enabled"],
                                   eval_blocks=options["eval_blocks"])
    fitted = training.fit(run_dir, net, cfg, ctx, train_blocks, validation, collator, score_first=True,
                          skip_training=not options["enabled"])
    if not training.is_main_process():
        return {}
    before, after = fitted.before["eval_loss"], fitted.validation["eval_loss"]
    write_json(paths.path(paths.ADAPT_METRICS, **where), {
        "adapted": options["enabled"], "train_blocks": len(train_blocks), "val_blocks": len(valid_blocks),
        "steps": fitted.trainer.state.global_step, "val_perplexity_before": round(math.exp(before), 3),
        "val_perplexity": round(math.exp(after), 3), "device": ctx.device, "precision": ctx.precision})

    def save_model(folder):
        if options["enabled"]:
            saved = lm.for_generation(net, tok) if is_causal(spec) else tok
            fitted.trainer.save_model(str(folder))
            saved.save_pretrained(str(folder))
        else:  # the general model, byte for byte
            shutil.copytree(pretrained, folder, dirs_exist_ok=True)

    training.finish(fitted, paths.path(paths.ADAPTED, **where), paths.path(paths.ADAPT_PLOTS, **where), save_model)
    _first_point(paths.path(paths.ADAPT_PLOTS, **where), before)
    print(f"adapt: {task}/{model} (seed {seed}): perplexity on the task's validation text {math.exp(before):.2f} -> "
          f"{math.exp(after):.2f} after {fitted.trainer.state.global_step} steps")
    if fitted.figures:
        fitted.figures["tokens_per_second"] = round(fitted.figures["examples_per_second"] * block_size, 1)
    return fitted.figures


def _first_point(plots, before: float) -> None:
    """The curve starts from the general model's validation loss, at step 0."""
    tsv = plots / "eval" / "loss.tsv"
    rows = tsv.read_text(encoding="utf-8").splitlines()[1:] if tsv.exists() else []
    tsv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(tsv) as tmp:
        tmp.write_text("\n".join(["step\tloss", f"0\t{before}", *rows]) + "\n", encoding="utf-8")

