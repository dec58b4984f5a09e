"""Linear probe of a recurrent model's pooled states on a sequence-classification task: how much of
the label a logistic regression reads from [last; max; mean] of the frozen states, for a pretrained
(or adapted) model against the same architecture at random initialisation.

A pretrained model whose probe is no better than the random one's has learned nothing the task
needs, and fine-tuning it can only start from worse-conditioned weights (docs/results.md).
A second table shows why, for the synthetic sentiment task: how alike the input embeddings of its
positive and negative adjectives are (mean cosine within and across polarity), and how many of
them a leave-one-out nearest-centroid rule puts on the right side.

    python benchmarks/probe_states.py models/adapt/sentiment/gru/seed42 models/pretrain/gru/seed42
    python benchmarks/probe_states.py --task sentiment --examples 2000 models/adapt/sentiment/gru/seed42

Run from the repository root after `snakemake` has written data/encoded/<task>. Each model folder
is probed as trained and, for the control, at a random initialisation of its own config.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from datasets import load_from_disk
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import AutoConfig, AutoModel, PreTrainedTokenizerFast

import scratchlm  # noqa: F401  (registers the recurrent models with transformers)
from scratchlm.models.recurrent import pool
from scratchlm.sources.synthetic import NEGATIVE, POSITIVE

POOLS = ("last", "max", "mean")


def pooled_states(model, rows: dict, batch_size: int = 64) -> np.ndarray:
    """[last; max; mean] of the model's states for each example, as one feature row."""
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows["input_ids"]), batch_size):
            ids = rows["input_ids"][start:start + batch_size]
            width = max(len(x) for x in ids)
            padded = torch.tensor([x + [0] * (width - len(x)) for x in ids])
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
            states = model(padded, attention_mask=mask).last_hidden_state
            out.append(torch.cat([pool(states, mask, how) for how in POOLS], -1).float().numpy())
    return np.concatenate(out)


def probe(model, train: dict, validation: dict) -> dict[str, float]:
    """Validation accuracy of a standardised, cross-validated logistic regression per pooled part."""
    xtr, xva = pooled_states(model, train), pooled_states(model, validation)
    width = xtr.shape[1] // len(POOLS)
    parts = {how: slice(i * width, (i + 1) * width) for i, how in enumerate(POOLS)}
    parts["concat"] = slice(0, xtr.shape[1])
    scores = {}
    for name, cols in parts.items():
        clf = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.001, 0.01, 0.1, 1], max_iter=3000,
                                                                   l1_ratios=(0,), scoring="accuracy",
                                                                   use_legacy_attributes=False))
        clf.fit(xtr[:, cols], train["labels"])
        scores[name] = round(float(clf.score(xva[:, cols], validation["labels"])), 3)
    return scores


def polarity_geometry(model, tok) -> dict[str, float]:
    """Cosines between the single-piece sentiment adjectives' embeddings, and a leave-one-out
    nearest-centroid count of their polarity."""
    table = model.get_input_embeddings().weight.detach()
    words = {w: tok(" " + w, add_special_tokens=False)["input_ids"] for w in POSITIVE + NEGATIVE}
    vectors = {w: torch.nn.functional.normalize(table[ids[0]], dim=0) for w, ids in words.items() if len(ids) == 1}
    groups = [[w for w in POSITIVE if w in vectors], [w for w in NEGATIVE if w in vectors]]
    cos = {(a, b): float(vectors[a] @ vectors[b]) for a in vectors for b in vectors if a < b}
    within = [c for (a, b), c in cos.items() if any(a in g and b in g for g in groups)]
    across = [c for (a, b), c in cos.items() if not any(a in g and b in g for g in groups)]
    right = 0
    for side, group in enumerate(groups):
        for w in group:
            centroids = [torch.stack([vectors[x] for x in g if x != w]).mean(0) for g in groups]
            right += int(max(range(2), key=lambda k: float(vectors[w] @ centroids[k])) == side)
    return {"within": np.mean(within), "across": np.mean(across), "right": right, "words": len(vectors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+",
                        help="folders of recurrent models (models/pretrain/<m>/seed<s>, models/adapt/...)")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--examples", type=int, default=2000, help="training examples the probe fits on")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-initialisation control")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_from_disk(f"data/encoded/{args.task}")
    train = data["train"].select(range(min(args.examples, len(data["train"]))))[:]
    validation = data["validation"][:]
    print(f"| model | weights | {' | '.join(POOLS)} | concat |\n|---|---|---|---|---|---|")
    for folder in args.models:
        torch.manual_seed(args.seed)
        for weights, model in (("trained", AutoModel.from_pretrained(folder)),
                               ("random init", AutoModel.from_config(AutoConfig.from_pretrained(folder)))):
            s = probe(model, train, validation)
            print(f"| {folder} | {weights} | {' | '.join(f'{s[k]:.3f}' for k in (*POOLS, 'concat'))} |")
    if args.task != "sentiment":
        return
    tok = PreTrainedTokenizerFast.from_pretrained("models/tokenizer")
    print("\n| model | weights | adjective cosine, same polarity | across polarities | polarity by nearest centroid |"
          "\n|---|---|---|---|---|")
    for folder in args.models:
        torch.manual_seed(args.seed)
        for weights, model in (("trained", AutoModel.from_pretrained(folder)),
                               ("random init", AutoModel.from_config(AutoConfig.from_pretrained(folder)))):
            g = polarity_geometry(model, tok)
            print(f"| {folder} | {weights} | {g['within']:.3f} | {g['across']:.3f} | {g['right']} of {g['words']} |")


if __name__ == "__main__":
    main()
