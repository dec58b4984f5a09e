"""Where the demo's sentiment models err: the accuracy of every seed of each fine-tuning run on the
synthetic sentiment task, by the kind of review, on the training and the validation split.

The generator's label sits in one verdict clause ("Overall, it was not at all good."), negated
half of the time with the opposite adjective, and after a contrast ("The plot was dull, but in
the end it was gripping.") in 40% of reviews. A model that fits its training reviews but misses
validation reviews mostly where the verdict is negated has learned the adjectives, not the rule
that negation flips them (docs/results.md, "Why pretrained sentiment still trails scratch").

    python benchmarks/sentiment_errors.py full scratch
    python benchmarks/sentiment_errors.py --model gru --splits validation full

Run from the repository root after the demo (data/raw/sentiment, data/encoded/sentiment and
models/finetune/sentiment/<model>/<run>/seed*).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
from datasets import load_from_disk
from transformers import AutoModelForSequenceClassification

import scratchlm  # noqa: F401  (registers the recurrent models with transformers)
from scratchlm.sources.synthetic import MARKERS

NEGATORS = re.compile(r"\b(not|never|hardly|by no means)\b")
KINDS = ("negated", "plain", "contrast", "direct")  # verdict negated or not; after "but" or not


def verdict_kind(text: str) -> dict[str, bool]:
    """Whether the review's verdict (the sentence with a marker) is negated, and whether it
    follows a contrast; the clause after "but" is the one that decides."""
    markers = tuple(m.lower() for m in MARKERS)
    verdict = next(s for s in re.split(r"(?<=\.) ", text) if any(m in s.lower() for m in markers))
    deciding = verdict.split(", but ")[-1]
    return {"negated": bool(NEGATORS.search(deciding)), "contrast": ", but " in verdict}


def accuracy_by_kind(predicted: list[int], gold: list[int], kinds: list[dict[str, bool]]) -> dict[str, tuple]:
    """(accuracy %, examples) over all rows and over each kind of KINDS."""
    def share(rows: list[int]) -> tuple:
        return (100 * sum(predicted[i] == gold[i] for i in rows) / len(rows) if rows else float("nan"), len(rows))

    every = range(len(gold))
    return {"all": share(list(every)),
            "negated": share([i for i in every if kinds[i]["negated"]]),
            "plain": share([i for i in every if not kinds[i]["negated"]]),
            "contrast": share([i for i in every if kinds[i]["contrast"]]),
            "direct": share([i for i in every if not kinds[i]["contrast"]])}


def predict(model, input_ids: list[list[int]], batch_size: int = 64) -> list[int]:
    out = []
    with torch.no_grad():
        for start in range(0, len(input_ids), batch_size):
            rows = input_ids[start:start + batch_size]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            out += model(input_ids=ids, attention_mask=mask).logits.argmax(-1).tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="fine-tuning runs of the sentiment task (full, scratch, ...)")
    parser.add_argument("--model", default="gru")
    parser.add_argument("--splits", nargs="+", default=["train", "validation"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    raw, encoded = load_from_disk("data/raw/sentiment"), load_from_disk("data/encoded/sentiment")
    print("| run | seed | split | all % | verdict negated % | not negated % | after a contrast % | direct % |\n"
          "|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        for folder in sorted(Path(f"models/finetune/sentiment/{args.model}/{run}").glob("seed*")):
            model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
            for split in args.splits:
                kinds = [verdict_kind(t) for t in raw[split]["text"]]
                scores = accuracy_by_kind(predict(model, encoded[split]["input_ids"]), encoded[split]["labels"],
                                          kinds)
                cells = " | ".join(f"{scores[k][0]:.1f} ({scores[k][1]})" for k in ("all", *KINDS))
                print(f"| {run} | {folder.name[4:]} | {split} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
