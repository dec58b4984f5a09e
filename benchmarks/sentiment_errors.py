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
from scratchlm.finetuning import collator
from scratchlm.sources.synthetic import MARKERS
from scratchlm.stages.evaluate import predict
from scratchlm.tokenization import load

NEGATORS = re.compile(r"\b(not|never|hardly|by no means)\b")
VERDICT_MARKERS = tuple(m.lower() for m in MARKERS)
KINDS = ("negated", "plain", "contrast", "direct")  # verdict negated or not; after "but" or not


def verdict_kind(text: str) -> dict[str, bool]:
    """Whether the review's verdict (the sentence with a marker) is negated, and whether it
    follows a contrast; the clause after "but" is the one that decides."""
    verdict = next(s for s in re.split(r"(?<=\.) ", text) if any(m in s.lower() for m in VERDICT_MARKERS))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="fine-tuning runs of the sentiment task (full, scratch, ...)")
    parser.add_argument("--model", default="gru")
    parser.add_argument("--splits", nargs="+", default=["train", "validation"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    raw, encoded = load_from_disk("data/raw/sentiment"), load_from_disk("data/encoded/sentiment")
    pad = collator("sequence-classification", load())
    kinds = {split: [verdict_kind(t) for t in raw[split]["text"]] for split in args.splits}
    print("| run | seed | split | all % | verdict negated % | not negated % | after a contrast % | direct % |\n"
          "|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        for folder in sorted(Path(f"models/finetune/sentiment/{args.model}/{run}").glob("seed*")):
            model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
            for split in args.splits:
                predicted = [int(p.argmax()) for p in predict(model, encoded[split], pad, batch_size=64)]
                scores = accuracy_by_kind(predicted, encoded[split]["labels"], kinds[split])
                cells = " | ".join(f"{scores[k][0]:.1f} ({scores[k][1]})" for k in ("all", *KINDS))
                print(f"| {run} | {folder.name[4:]} | {split} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
