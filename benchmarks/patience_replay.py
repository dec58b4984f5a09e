"""What a smaller early-stopping patience would have selected, replayed from finished runs' logged
validation curves (docs/results.md, "Patience: 4 evaluations, not fewer").

    python benchmarks/patience_replay.py results/finetune --metric entity_f1 --patience 4 3 2

Exact only for a schedule not tied to when a run stops (`constant_with_warmup`): there a run's
trajectory up to any step is the same whatever its patience, so patience p selects the best
evaluation before the first p in a row without a new best. Prints, per run and seed, the step each
patience selects and stops at, and the selected score's change against the first patience given.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_curve(path: Path) -> list[tuple[int, float]]:
    with path.open() as f:
        return [(int(row["step"]), float(row[path.stem])) for row in csv.DictReader(f, delimiter="\t")]


def replay(curve: list[tuple[int, float]], patience: int) -> tuple[int, float, int]:
    """(selected step, its score, step stopped at) under early stopping after `patience`
    evaluations without a new best (a run that never stalls so long ends at its last evaluation)."""
    best, best_at, stalled = float("-inf"), 0, 0
    for i, (step, score) in enumerate(curve):
        if score > best:
            best, best_at, stalled = score, i, 0
        else:
            stalled += 1
            if stalled >= patience:
                return curve[best_at][0], best, step
    return curve[best_at][0], best, curve[-1][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a folder holding runs' plots/seed*/eval/<metric>.tsv")
    parser.add_argument("--metric", required=True, help="the selection metric, e.g. entity_f1 or accuracy")
    parser.add_argument("--patience", type=int, nargs="+", default=[4, 3, 2])
    args = parser.parse_args()
    for tsv in sorted(args.root.glob(f"**/plots/seed*/eval/{args.metric}.tsv")):
        outcomes = [replay(read_curve(tsv), p) for p in args.patience]
        base = outcomes[0][1]
        cells = [f"p{p}: selected {sel}, stopped {end}, {100 * (score - base):+.2f}"
                 for p, (sel, score, end) in zip(args.patience, outcomes)]
        print(tsv.parent.parent.relative_to(args.root), " | ".join(cells))


if __name__ == "__main__":
    main()
