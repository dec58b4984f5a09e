"""Carving validation (and test) rows out of a train split without leaking text across the cut,
and measuring the overlap between splits.

Rows are grouped into units that must not be split: a document (CoNLL's `-DOCSTART-`), a
sentence with every phrase it contains (phrase-level data such as SST-2, whose training rows are
the phrases of its sentences' parse trees: 89% of them occur inside another row), or an exact
text. A row belongs to every unit that holds it: a phrase of several sentences to each of them.
A carved split takes whole units until it has its rows; a row goes to it only if all its units
did, to train only if none did, and is dropped otherwise (a short phrase of sentences on both
sides). Grouped by sentence, a carved split keeps the sentences alone and drops their phrases:
it selects checkpoints on text shaped like a test set of sentences (SST-2's carved validation of
2% of its rows was 158 sentences among 1,200 of their phrases, and rewarded the phrase-level
fit). What each grouping guarantees: by sentence, no carved row equals, contains or sits
inside a training row; by exact text, none equals one; by document, no document is split, and
its carved rows that equal a training row (a heading, a byline) are dropped too.

Containment is of whole words: `"the film"` is inside `"the film is good"`, not inside
`"the filmmaker"`."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Sequence


class Index:
    """Texts indexed by word, to find which of them hold a text as a run of whole words. A lookup
    checks only the texts that share its rarest word (SST-2's 67k rows: 2.3M substring checks,
    about 2 s for all of them)."""

    def __init__(self, texts: Sequence[str]):
        self.words = [t.split() for t in texts]
        self.padded = [f" {' '.join(ws)} " for ws in self.words]
        self.postings: dict[str, list[int]] = defaultdict(list)
        for i, ws in enumerate(self.words):
            for w in set(ws):
                self.postings[w].append(i)

    def holders(self, text: str) -> list[int]:
        """The indexed texts longer than `text` that hold it."""
        ws = text.split()
        if not ws or any(w not in self.postings for w in ws):
            return []
        rarest = min(set(ws), key=lambda w: len(self.postings[w]))
        padded = f" {' '.join(ws)} "
        return [j for j in self.postings[rarest] if len(self.words[j]) > len(ws) and padded in self.padded[j]]

    def overlap(self, other: Sequence[str]) -> dict[str, int]:
        """How many of `other` are indexed texts (`exact`, the same words) or sit inside a longer
        one (`contained`)."""
        exact_set = set(self.padded)
        exact = contained = 0
        for text in other:
            if f" {' '.join(text.split())} " in exact_set:
                exact += 1
            elif self.holders(text):
                contained += 1
        return {"exact": exact, "contained": contained}


def units(texts: Sequence[str], by: str, documents: Sequence[int] | None = None) -> list[tuple[int, ...]]:
    """Each row's units: `document` (its document id), `containment` (the sentences, rows no other
    row contains, that hold it; equal texts share them) or `exact` (its text)."""
    if by == "document":
        if documents is None:
            raise ValueError("carving by document needs the rows' documents")
        return [(d,) for d in documents]
    ids, order = _distinct(texts)
    if by == "exact":
        return [(i,) for i in ids]
    index = Index(order)
    holders = [index.holders(t) for t in order]
    roots = [tuple(sorted(j for j in holders[i] if not holders[j])) or (i,) for i in range(len(order))]
    return [roots[i] for i in ids]


def sentences(texts: Sequence[str], row_units: Sequence[tuple[int, ...]]) -> list[bool]:
    """Which rows, grouped by `containment`, are a sentence (their own and only unit: no other row
    holds them) rather than a phrase inside one."""
    return [row_units[row] == (i,) for row, i in enumerate(_distinct(texts)[0])]


def _distinct(texts: Sequence[str]) -> tuple[list[int], list[str]]:
    """(each row's text id, the distinct texts in order of first appearance): "the  film" is
    "the film". The ids are those `units` numbers its units by."""
    words = [" ".join(t.split()) for t in texts]
    order = list(dict.fromkeys(words))
    distinct = {t: i for i, t in enumerate(order)}
    return [distinct[t] for t in words], order


def _stratified(rows_of: dict[int, list[int]], strata: Sequence[int] | None, seed: int) -> list[int]:
    """The units in a seeded order in which every stratum (a unit's most common label) comes at
    its own share: the first units taken hold each class in proportion, not by luck."""
    rng = random.Random(seed)
    order = sorted(rows_of)
    rng.shuffle(order)
    if strata is None:
        return order
    by_stratum: dict[int, list[int]] = defaultdict(list)
    for unit in order:
        by_stratum[Counter(strata[r] for r in rows_of[unit]).most_common(1)[0][0]].append(unit)
    key = {unit: ((k + rng.random()) / len(units), unit) for units in by_stratum.values()
           for k, unit in enumerate(units)}
    return sorted(order, key=key.__getitem__)


def carve(row_units: Sequence[tuple[int, ...]], wanted: dict[str, int], seed: int,
          strata: Sequence[int] | None = None, whole: Sequence[bool] | None = None
          ) -> tuple[dict[str, list[int]], list[int]]:
    """Row indices per split (`train` and each of `wanted`, in its order) and the dropped rows.
    Units are taken in a seeded order (stratified by the rows' `strata`, their labels, if given)
    until each split has at least its rows; a split that cannot get them raises ValueError. With
    `whole` (`sentences`), a carved split counts and keeps only those rows: the others of its
    units are dropped."""
    rows_of: dict[int, list[int]] = defaultdict(list)
    for row, held in enumerate(row_units):
        for unit in held:
            rows_of[unit].append(row)
    taken, split_of = iter(_stratified(rows_of, strata, seed)), {}
    for split, n in wanted.items():
        hits, complete = Counter(), 0
        for unit in taken:
            split_of[unit] = split
            for row in rows_of[unit]:
                hits[row] += 1
                complete += hits[row] == len(row_units[row]) and (whole is None or whole[row])
            if complete >= n:
                break
        else:
            raise ValueError(f"{split}: the rows run out before {n} whole units")
    out: dict[str, list[int]] = {"train": [], **{split: [] for split in wanted}}
    dropped = []
    for row, held in enumerate(row_units):
        sides = {split_of.get(unit, "train") for unit in held}
        side = sides.pop() if len(sides) == 1 else None
        kept = side == "train" or (side is not None and (whole is None or whole[row]))
        (out[side] if kept else dropped).append(row)
    if not out["train"]:
        raise ValueError("train: no row is left")
    return out, dropped


def without_copies(splits: dict[str, list[int]], dropped: list[int], texts: Sequence[str]
                   ) -> tuple[dict[str, list[int]], list[int]]:
    """The carved splits less their rows whose text is also a training row's (a byline or a
    heading that recurs across documents: whole documents alone leave those on both sides)."""
    train = {texts[i] for i in splits["train"]}
    out, dropped = {"train": splits["train"]}, list(dropped)
    for split, rows in splits.items():
        if split != "train":
            out[split] = [i for i in rows if texts[i] not in train]
            dropped += [i for i in rows if texts[i] in train]
    return out, sorted(dropped)
