"""Stage `pretrain`: train one language model from scratch on the packed corpus blocks.

Recurrent models learn causal LM on fixed blocks; the hidden state starts at zero in every block
(no carry-over between blocks): blocks are shuffled for SGD, so the previous block in a batch is
not the text's predecessor, and truncated BPTT with carried state would need ordered streams.
The BERT-style encoder learns masked LM (BERT's 15%, 80/10/10); its validation blocks are
masked once with a fixed seed, so every evaluation scores the same positions.
"""

from __future__ import annotations

import math

from datasets import load_from_disk
from transformers import DataCollatorForLanguageModeling

from .. import lm, paths, training
from ..atomic import upstream, write_json, write_text
from ..models import RecurrentConfig, is_causal, pretraining_model
from ..tokenization import load
from ..training_config import training_config


def run(params: dict, model: str, seed: str) -> dict:
    spec, cfg = params["pretrain"]["models"][model], training_config(params, "pretrain", model)
    ctx = training.start(params, int(seed))  # this LM's seed: its initialisation, batches and training masks
    probe = params["seed"]  # every LM of the model is scored on the same validation blocks, masked alike
    where = {"model": model, "seed": seed}
    tok = load()
    corpus = params["pretrain"]["corpus"]
    blocks = load_from_disk(upstream(paths.path(paths.BLOCKS, corpus=corpus), "pack"))
    blocks["validation"] = lm.bounded(blocks["validation"], params["pretrain"]["eval_blocks"], probe)
    net = pretraining_model(spec, tok, f"pretrain.models.{model}")
    causal = is_causal(spec)
    if causal:
        collator, validation = DataCollatorForLanguageModeling(tok, mlm=False), blocks["validation"]
    else:
        collator = lm.MaskedOnce(tok, spec["mlm_probability"])
        validation = lm.mask_validation(blocks["validation"], tok, spec["mlm_probability"], probe)
    recurrent = net.config.model_type == RecurrentConfig.model_type
    saturation_at_init = lm.state_saturation(net, blocks["validation"]) if recurrent else None
    # a named checkpoint is loaded instead of pretrained: it is only scored on our validation blocks
    run_dir = training.checkpoints(f"pretrain/{model}/seed{seed}", cfg, ctx, params=[spec, corpus],
                                   data=blocks["train"]._fingerprint)
    fitted = training.fit(run_dir, net, cfg, ctx, blocks["train"], validation, collator,
                          skip_training=bool(spec.get("checkpoint")))
    if not training.is_main_process():  # the other workers helped train; rank 0 writes
        return {}

    val, rows, block = fitted.validation, len(blocks["train"]), len(blocks["train"][0]["input_ids"])
    metrics = {
        "objective": "causal" if causal else "masked",
        "val_loss": round(val["eval_loss"], 4), "val_perplexity": round(math.exp(val["eval_loss"]), 3),
        "unigram_perplexity": round(lm.unigram_perplexity(blocks["train"]["input_ids"],
                                                              blocks["validation"]["input_ids"], len(tok)), 3),
        "steps": fitted.trainer.state.global_step, "tokens": tokens_seen(fitted.trainer, rows, block),
        "device": ctx.device, "precision": ctx.precision,
        **training.count_parameters(net),
    }
    if recurrent:  # bounded states: how many sit where gradients vanish, before and after pretraining
        metrics.update(state_saturation_init=saturation_at_init,
                       state_saturation=lm.state_saturation(net, blocks["validation"]))

    def save_model(folder):
        saved = lm.for_generation(net, tok) if causal else tok
        fitted.trainer.save_model(str(folder))
        saved.save_pretrained(str(folder))

    text = lm.samples(net, tok, lm.PROMPTS, probe) if causal else lm.fill_masks(net, tok, lm.MASKED)
    training.finish(fitted, paths.path(paths.PRETRAINED, **where), paths.path(paths.PRETRAIN_PLOTS, **where),
                    save_model)
    write_text(paths.path(paths.PRETRAIN_SAMPLES, **where), text)
    write_json(paths.path(paths.PRETRAIN_METRICS, **where), metrics)
    print(f"pretrain: {model} (seed {seed}): validation perplexity {metrics['val_perplexity']} "
          f"(unigram {metrics['unigram_perplexity']}) after {metrics['steps']} steps")
    figures = fitted.figures  # tokens/s is a timing: with the others, so that metrics.json reruns byte-identical
    if figures:
        figures["tokens_per_second"] = round(figures["examples_per_second"] * block, 1)
    return figures


def tokens_seen(trainer, rows: int, block: int) -> int:
    """The training tokens the steps took, resumed ones included: whole epochs over the `rows`
    training blocks (each worker's share padded to equal size, as the distributed sampler pads
    it), then the batches of the epoch under way. An epoch's last batch is short: steps times
    batch size would count blocks that are not there."""
    world, batch = trainer.args.world_size, trainer.args.train_batch_size
    share = math.ceil(rows / world)
    epochs, steps = divmod(trainer.state.global_step, math.ceil(share / batch))
    return (epochs * share + steps * batch) * world * block
