"""Synthetic data of our own making: deterministic from a seed, learnable, and not solvable by
counting words.

Sentiment: the label is carried by one *verdict* clause ("Overall, it was not at all good.",
"The plot was dull, but in the end it was gripping."), put anywhere in a review among clauses
about aspects. Every phrase is negated half of the time, with the adjective of the opposite
polarity, and contrast hands the decision to the clause after *but*: so each adjective is as
often in a positive as in a negative review, a bag of words sits near chance, and a model that
reads the sequence does not. Aspect clauses agree with the verdict with probability
`coherence`, as the sentences of a real review mostly do: that is what gives a language model
pretrained on unlabeled reviews a reason to track the sentiment of a text (with independent
aspects the LM learns to forget polarity at every full stop). `negation` sets the aspect
clauses' share of negated phrases (IMDB's labelled reviews: 0.07, measured); the verdict's
stays at one half. docs/results.md has what each setting did to the demo's LM.

NER: sentences from templates whose slots are PER/ORG/LOC/MISC names of one to four tokens,
made from syllables. Validation/test names are drawn apart from training names, and a pool of
ambiguous surface forms is used as PER in one context and LOC or ORG in another, so the
context, not memory, decides.
"""

from __future__ import annotations

import random
from typing import Iterator

from datasets import Dataset, DatasetDict

from ..kinds import SENTIMENT_LABELS, dataset_kind
from .form import SPLITS, features, split_seed

NER_TYPES = ["PER", "ORG", "LOC", "MISC"]
NER_TAGS = ["O"] + [f"{p}-{t}" for t in NER_TYPES for p in ("B", "I")]

# ---------------------------------------------------------------- sentiment

POSITIVE = ["good", "great", "wonderful", "brilliant", "charming", "gripping", "delightful",
            "superb", "excellent", "moving", "clever", "enjoyable", "solid", "lovely"]
NEGATIVE = ["bad", "awful", "boring", "dull", "terrible", "clumsy", "tedious", "weak",
            "disappointing", "mediocre", "poor", "bland", "messy", "forgettable"]
INTENSIFIERS = ["very", "really", "truly", "extremely", "incredibly", "remarkably", "quite"]
# each negation template wraps an adjective phrase and flips its polarity
NEGATIONS = ["not {}", "not at all {}", "not {} at all", "never {}", "hardly {}",
             "by no means {}", "not particularly {}"]
MARKERS = ["Overall,", "All in all,", "In the end,", "To sum up,", "My verdict:", "On balance,",
           "Taken as a whole,"]
FILM_ASPECTS = ["the plot", "the acting", "the soundtrack", "the dialogue", "the pacing",
                "the camera work", "the ending", "the cast", "the script", "the costumes"]
PRODUCT_ASPECTS = ["the battery", "the design", "the screen", "the price", "the packaging",
                   "the build quality", "the manual", "the customer service", "the charger"]
FILLERS = [
    "I watched it with my sister on a rainy evening.", "It runs for about two hours.",
    "The trailer came out last spring.", "I bought it after reading a few reviews.",
    "My neighbour recommended it to me.", "It arrived on a Tuesday.",
    "We talked about it for a while afterwards.", "The box was bigger than I expected.",
    "I had seen the first one years ago.", "A friend lent me hers for the weekend.",
    "There were a lot of people in the room.", "It comes in three colours.",
]
VERDICT_NEGATION = 0.5  # the label's clause: its adjective alone says nothing, whatever `negation` is
SYLLABLES = ["ka", "vel", "mor", "tan", "ri", "so", "bel", "dra", "quin", "lo", "zen", "tor",
             "ma", "rin", "ga", "fel", "os", "ur", "nik", "sa", "ly", "dor", "pe", "wen", "ha",
             "bri", "cal", "ne", "thu", "vi", "xo", "ar", "em", "il", "jo", "kes"]


def _word(rng: random.Random, n_min: int = 2, n_max: int = 3) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(n_min, n_max))).capitalize()


def _adjective(rng: random.Random, positive: bool) -> str:
    adj = rng.choice(POSITIVE if positive else NEGATIVE)
    return f"{rng.choice(INTENSIFIERS)} {adj}" if rng.random() < 0.35 else adj


def _phrase(rng: random.Random, positive: bool, negation: float) -> str:
    """An adjective phrase of the given polarity, negated with probability `negation`."""
    if rng.random() < 1 - negation:
        return _adjective(rng, positive)
    return rng.choice(NEGATIONS).format(_adjective(rng, not positive))


def _aspect_clause(rng: random.Random, aspects: list[str], positive: bool, negation: float) -> str:
    return f"{rng.choice(aspects)} was {_phrase(rng, positive, negation)}"


def _verdict(rng: random.Random, aspects: list[str], positive: bool, negation: float) -> str:
    marker = rng.choice(MARKERS)
    verdict = f"{marker} it was {_phrase(rng, positive, VERDICT_NEGATION)}"
    if rng.random() < 0.4:  # contrast: the clause after "but" decides
        first = _aspect_clause(rng, aspects, not positive, negation).capitalize()
        verdict = f"{first}, but {marker[0].lower() + marker[1:]} it was {_phrase(rng, positive, VERDICT_NEGATION)}"
    return verdict + "."


def _aspect_sentence(rng: random.Random, aspects: list[str], positive: bool, coherence: float,
                     negation: float) -> str:
    if rng.random() < 0.3:
        return rng.choice(FILLERS)
    agrees = rng.random() < coherence
    return _aspect_clause(rng, aspects, positive == agrees, negation).capitalize() + "."


def _review_length(rng: random.Random) -> int:
    """Number of distractor sentences: mostly short reviews, a long tail up to ~40 sentences."""
    r = rng.random()
    if r < 0.4:
        return rng.randint(0, 2)
    if r < 0.85:
        return rng.randint(3, 8)
    return rng.randint(10, 40)


def sentiment_review(rng: random.Random, positive: bool, coherence: float = 0.75,
                     negation: float = 0.5) -> str:
    film = rng.random() < 0.6
    aspects = FILM_ASPECTS if film else PRODUCT_ASPECTS
    subject = f"The {_word(rng)} {_word(rng)}" if film else f"The {_word(rng)} {rng.randint(2, 99)}"
    opening = f"I {'watched' if film else 'tried'} {subject}."
    sentences = [_aspect_sentence(rng, aspects, positive, coherence, negation)
                 for _ in range(_review_length(rng))]
    sentences.insert(rng.randint(0, len(sentences)), _verdict(rng, aspects, positive, negation))
    return " ".join([opening, *sentences])


def sentiment_examples(seed: int, n: int, label_noise: float = 0.0, coherence: float = 0.75,
                       negation: float = 0.5) -> Iterator[dict]:
    rng = random.Random(seed)
    for i in range(n):
        label = i % 2  # exact balance; the caller shuffles
        text = sentiment_review(rng, bool(label), coherence, negation)
        if label_noise and rng.random() < label_noise:
            label = 1 - label
        yield {"text": text, "label": label}


# ---------------------------------------------------------------- NER

ORG_SUFFIXES = ["Industries", "Group", "Bank", "Holdings", "Labs", "Motors", "Airlines", "United"]
LOC_PREFIXES = ["Port", "Lake", "New", "North", "Mount", "San"]
MISC_FORMS = ["{}ian", "{}ese", "{} Cup", "{} Open", "{} Prize", "{} Festival"]

# templates: text with slots {PER}, {ORG}, {LOC}, {MISC}; tokens are separated by spaces
NER_TEMPLATES = [
    "{PER} , chief executive of {ORG} , said on Monday that profits rose .",
    "{ORG} opened a new office in {LOC} last week .",
    "{PER} won the {MISC} after beating {PER} in the final .",
    "Shares of {ORG} fell 3 percent in {LOC} trading .",
    "{PER} travelled from {LOC} to {LOC} to meet officials .",
    "The {MISC} team arrived in {LOC} on Sunday .",
    "Police in {LOC} said {PER} was arrested on Tuesday .",
    "{PER} joined {ORG} as head of research .",
    "Fans of the {MISC} gathered outside the stadium in {LOC} .",
    "{ORG} and {ORG} agreed to merge , sources told reporters .",
    "According to {PER} , the talks in {LOC} will resume next month .",
    "The {MISC} government said {ORG} would pay a fine .",
    "Mr {PER} told {ORG} that he would stay .",
    "Rain delayed the match between {LOC} and {LOC} .",
]


def _entity(rng: random.Random, kind: str) -> str:
    """A fresh surface form of one to four tokens for the entity type."""
    if kind == "PER":
        return " ".join(_word(rng) for _ in range(rng.choice([1, 2, 2, 2, 3])))
    if kind == "ORG":
        form = rng.random()
        if form < 0.4:
            return f"{_word(rng)} {rng.choice(ORG_SUFFIXES)}"
        if form < 0.55:
            if rng.random() < 0.5:
                return f"Bank of {_word(rng)}"
            return f"{_word(rng)} {_word(rng)} {rng.choice(ORG_SUFFIXES)}"
        if form < 0.7:  # the four-token names
            return f"{_word(rng)} {_word(rng)} {rng.choice(ORG_SUFFIXES)} International"
        return _word(rng, 2, 4)
    if kind == "LOC":
        return f"{rng.choice(LOC_PREFIXES)} {_word(rng)}" if rng.random() < 0.4 else _word(rng)
    return rng.choice(MISC_FORMS).format(_word(rng))


def entity_pools(seed: int, per_type: int) -> dict[str, dict[str, list[str]]]:
    """Disjoint name pools: {'train'|'heldout': {type: [names]}}, plus shared ambiguous forms.

    Held-out names are rejected if any training name of any type has the same surface form.
    """
    rng = random.Random(seed)
    pools: dict[str, dict[str, list[str]]] = {"train": {}, "heldout": {}}
    seen: set[str] = set()
    for split in ("train", "heldout"):
        for kind in NER_TYPES:
            names: list[str] = []
            while len(names) < per_type:
                name = _entity(rng, kind)
                if name not in seen:
                    seen.add(name)
                    names.append(name)
            pools[split][kind] = names
    pools["ambiguous"] = {"forms": [_word(rng) for _ in range(max(4, per_type // 10))]}
    return pools


def _fill(rng: random.Random, template: str, names: dict[str, list[str]],
          ambiguous: list[str]) -> tuple[list[str], list[str]]:
    tokens: list[str] = []
    tags: list[str] = []
    for piece in template.split():
        if piece.startswith("{") and piece.endswith("}"):
            kind = piece[1:-1]
            if kind in ("PER", "LOC", "ORG") and rng.random() < 0.1:
                name = rng.choice(ambiguous)  # same form, type decided by the slot's context
            else:
                name = rng.choice(names[kind])
            words = name.split()
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        else:
            tokens.append(piece)
            tags.append("O")
    return tokens, tags


def ner_examples(seed: int, n: int, pools: dict, split: str) -> Iterator[dict]:
    rng = random.Random(seed)
    names = pools["train" if split == "train" else "heldout"]
    for _ in range(n):
        tokens, tags = _fill(rng, rng.choice(NER_TEMPLATES), names, pools["ambiguous"]["forms"])
        yield {"tokens": tokens, "ner_tags": [NER_TAGS.index(t) for t in tags]}


# ---------------------------------------------------------------- unlabeled corpus

def corpus_examples(seed: int, n: int, coherence: float = 0.75, negation: float = 0.5) -> Iterator[dict]:
    """Unlabeled text from the same generators (like IMDB's unsup split): reviews and news lines."""
    rng = random.Random(seed)
    pools = entity_pools(seed + 1, 200)
    for _ in range(n):
        if rng.random() < 0.7:
            text = sentiment_review(rng, rng.random() < 0.5, coherence, negation)
        else:
            lines = [_fill(rng, rng.choice(NER_TEMPLATES), pools["train"], pools["ambiguous"]["forms"])[0]
                     for _ in range(rng.randint(1, 4))]
            text = " ".join(" ".join(tokens) for tokens in lines)
        yield {"text": text}


# ---------------------------------------------------------------- the `synthetic` source

def _rows(spec: dict, seed: int, name: str, split: str) -> list[dict]:
    n, s = spec[split], split_seed(seed, name, split)
    if spec["generator"] == "sentiment":
        noise = spec["label_noise"] if split == "train" else 0.0  # evaluate against true labels
        return list(sentiment_examples(s, n, noise, spec["coherence"], spec["negation"]))
    if spec["generator"] == "ner":
        pools = entity_pools(split_seed(seed, name, "names"), max(50, spec["train"] // 4))
        return list(ner_examples(s, n, pools, split))
    return list(corpus_examples(s, n, spec["coherence"], spec["negation"]))


def build(name: str, spec: dict, seed: int) -> tuple[DatasetDict, dict]:
    """The dataset a `source: synthetic` spec describes, every split generated (nothing carved)."""
    kind = dataset_kind(spec)
    names = {"classification": SENTIMENT_LABELS, "ner": NER_TAGS}.get(kind, [])
    return DatasetDict({
        split: Dataset.from_list(_rows(spec, seed, name, split), features=features(kind, names))
        .shuffle(seed=split_seed(seed, name, split))
        for split in SPLITS}), {}
