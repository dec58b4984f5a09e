"""Paired bootstrap confidence intervals for "run A against run B" on the same test examples:
resample the test examples and the seeds together (Koehn 2004's paired bootstrap, with seeds as a
second level, as Dror et al. 2018 recommend for comparing stochastic training runs). Seeds are
resampled within their stratum (a model, where a task's models are pooled); where a model's
seeds fine-tuned several pretrained LMs, its LMs are resampled first and the seeds within each
drawn LM after (a two-stage cluster bootstrap), so the interval covers pretraining's variance too.

A metric is a function of summed per-example counts, so a resample is one weighted sum:
accuracy from (correct, 1); entity F1 from (true positives, false positives, false negatives) per
sentence (strict IOB2 spans, the same entities seqeval scores). Both runs are scored on each
resample with the same examples and the same seeds, so what the interval measures is the
difference, not the spread of either.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


class Interval(NamedTuple):
    gain: float  # the difference on the test set as it is, mean over the paired seeds
    low: float
    high: float

    @property
    def shown(self) -> bool:
        """Whether the difference is distinguishable from zero at this level."""
        return self.low > 0 or self.high < 0

    def words(self, scale: float = 100.0, unit: str = "points") -> str:
        """`+1.09 points (95% CI +0.19 to +2.19)`, or `...; not distinguishable from zero)`."""
        return (f"{scale * self.gain:+.2f} {unit} (95% CI {scale * self.low:+.2f} to {scale * self.high:+.2f}"
                + (")" if self.shown else "; not distinguishable from zero)"))


def accuracy_counts(labels: list[int], predictions: list[int]) -> np.ndarray:
    """(examples, 2): correct, and one per example."""
    correct = np.asarray(labels) == np.asarray(predictions)
    return np.stack([correct, np.ones_like(correct)], axis=1).astype(np.float64)


def accuracy(sums: np.ndarray) -> np.ndarray:
    return sums[..., 0] / sums[..., 1]


def entity_counts(true_tags: list[list[str]], pred_tags: list[list[str]]) -> np.ndarray:
    """(sentences, 3): true positives, false positives, false negatives of strict IOB2 entities."""
    from seqeval.scheme import IOB2, Entities

    gold = Entities(true_tags, IOB2).entities
    pred = Entities(pred_tags, IOB2).entities
    rows = []
    for g, p in zip(gold, pred):
        g, p = {e.to_tuple() for e in g}, {e.to_tuple() for e in p}
        rows.append((len(g & p), len(p - g), len(g - p)))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def entity_f1(sums: np.ndarray) -> np.ndarray:
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


METRICS = {"accuracy": (accuracy_counts, accuracy), "entity_f1": (entity_counts, entity_f1)}


def paired(a: np.ndarray, b: np.ndarray, metric, resamples: int = RESAMPLES, seed: int = 0,
           groups: list[tuple] | None = None) -> Interval:
    """The interval of metric(a) - metric(b). a, b: (seeds, examples, counts) per-example counts
    of the two runs, seed i of one paired with seed i of the other. `groups`: per seed, (its
    stratum, the LM it fine-tuned), any hashable labels (None: one stratum, one LM)."""
    if a.shape != b.shape or a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"paired bootstrap: runs of shapes {a.shape} and {b.shape} are not (seeds, examples, "
                         f"counts) pairs of the same test set")
    if groups is not None and len(groups) != a.shape[0]:
        raise ValueError(f"paired bootstrap: {len(groups)} groups for {a.shape[0]} seeds")
    seeds, examples, _ = a.shape
    rng = np.random.default_rng(seed)
    strata: dict = {}  # stratum -> LM -> its seeds' indices
    for i, (stratum, lm) in enumerate(groups or [(0, 0)] * seeds):
        strata.setdefault(stratum, {}).setdefault(lm, []).append(i)
    members = [[np.array(lms[lm]) for lm in lms] for lms in strata.values()]
    diffs = np.empty(resamples)
    gain = float(np.mean(metric(a.sum(axis=1)) - metric(b.sum(axis=1))))
    for start in range(0, resamples, 200):  # in chunks: (200, examples) weights stay small
        n = min(200, resamples - start)
        weights = rng.multinomial(examples, np.full(examples, 1.0 / examples), size=n).astype(np.float64)
        shares = _seed_weights(rng, members, n)
        per_seed = metric(np.einsum("re,sec->rsc", weights, a)) - metric(np.einsum("re,sec->rsc", weights, b))
        diffs[start:start + n] = (per_seed * shares).sum(axis=1)
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return Interval(gain, float(low), float(high))


def _seed_weights(rng: np.random.Generator, members: list[list[np.ndarray]], n: int) -> np.ndarray:
    """(n, seeds): the share of each seed in each resample, stratum by stratum. A stratum of one
    LM: its seeds drawn with replacement. Of several: its LMs drawn with replacement, then, in
    each drawn LM, as many seeds as it has, with replacement."""
    size = sum(len(m) for lms in members for m in lms)
    weights = np.zeros((n, size))
    for lms in members:
        if len(lms) == 1:
            np.add.at(weights, (np.arange(n)[:, None], lms[0][rng.integers(0, len(lms[0]), size=(n, len(lms[0])))]),
                      1.0)
            continue
        for r in range(n):
            for k in rng.integers(0, len(lms), size=len(lms)):
                np.add.at(weights[r], lms[k][rng.integers(0, len(lms[k]), size=len(lms[k]))], 1.0)
    return weights / weights.sum(axis=1, keepdims=True)
