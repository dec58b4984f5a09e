"""How often real reviews negate the synthetic generator's sentiment adjectives, and how often an
adjective's own polarity agrees with its review's label: the figures `data.datasets.<d>.negation`
and `coherence` are compared with (docs/results.md).

    python benchmarks/negation_rates.py ../shared/data/imdb/train.jsonl

Reads JSON lines with `text` and `label` (1 positive), as IMDB's labelled reviews are laid out in
`../shared/data`. An adjective is negated when a negator stands within the three words before it.
"""

from __future__ import annotations

import argparse
import json
import re

from scratchlm.sources.synthetic import NEGATIVE, POSITIVE

NEGATORS = {"not", "never", "hardly", "no", "nothing"}


def rates(lines) -> dict[str, float]:
    adjectives = negated = raw = aware = 0
    for line in lines:
        review = json.loads(line)
        words = re.findall(r"[a-z']+", review["text"].lower().replace("<br />", " "))
        for i, word in enumerate(words):
            if word not in POSITIVE and word not in NEGATIVE:
                continue
            negation = any(w in NEGATORS or w.endswith("n't") for w in words[max(0, i - 3):i])
            positive = word in POSITIVE
            adjectives += 1
            negated += negation
            raw += positive == bool(review["label"])
            aware += (positive != negation) == bool(review["label"])
    return {"adjectives": adjectives, "negated": negated / adjectives,
            "own_polarity_agrees": raw / adjectives, "negation_aware_agrees": aware / adjectives}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reviews", help="JSON lines with text and label")
    args = parser.parse_args()
    with open(args.reviews, encoding="utf-8") as f:
        r = rates(f)
    print(f"{r['adjectives']:,} adjectives; negated {r['negated']:.3f}; own polarity agrees with the label "
          f"{r['own_polarity_agrees']:.3f}; with the negation read {r['negation_aware_agrees']:.3f}")


if __name__ == "__main__":
    main()
