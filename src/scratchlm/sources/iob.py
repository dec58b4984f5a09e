"""Entity tag schemes. Everything downstream speaks strict IOB2 (every entity opens with B-)."""

from __future__ import annotations


def check(tag: str) -> bool:
    return tag == "O" or (len(tag) > 2 and tag[:2] in ("B-", "I-"))


def to_iob2(tags: list[str]) -> tuple[list[str], int]:
    """IOB1 -> IOB2, which is also the repair of invalid IOB2: an I-X that does not continue an
    X entity opens one (becomes B-X). Returns the tags and how many were changed."""
    out, changed, previous = [], 0, "O"
    for tag in tags:
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            tag = "B-" + tag[2:]
            changed += 1
        out.append(tag)
        previous = tag
    return out, changed


def ordered_names(tags) -> list[str]:
    """O first, then per entity type (in order of first appearance) B- before I-."""
    types: list[str] = []
    for tag in tags:
        if tag != "O" and tag[2:] not in types:
            types.append(tag[2:])
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) of each entity in IOB2 tags; end is exclusive."""
    found, start, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
            found.append((kind, start, i))
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, kind = i, tag[2:]
    return found
