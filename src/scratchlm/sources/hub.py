"""The `hub` source: `datasets.load_dataset` with a pinned revision. `path` may also be a local
dataset directory (the same call, which is how the tests exercise it offline)."""

from __future__ import annotations

from typing import Iterator

from ..errors import ScratchError, cannot_load, first_line


def load(name: str, spec: dict):
    """The hub's DatasetDict, or one line saying why not and what to do instead."""
    import datasets

    key = f"data.datasets.{name}"
    try:
        return datasets.load_dataset(spec["path"], spec["name"], revision=spec["revision"])
    except Exception as e:  # network, auth, missing revision, script datasets: all end the same way
        if "scripts are no longer supported" in first_line(e):
            raise ScratchError(f"{key}: {spec['path']!r} is a script dataset, which datasets>=4 cannot run; "
                               f"set revision: refs/convert/parquet (its parquet export)") from None
        raise cannot_load(f"{key}.path = {spec['path']!r} (revision {spec['revision']})", e,
                          "Use source: local with files under data/external/, or source: synthetic") from None


def records(name: str, spec: dict) -> tuple[dict[str, Iterator | None], dict]:
    """Per split of ours, (where, row) pairs from the mapped hub split (None: carve from train),
    and the ClassLabel names the hub declares per column."""
    dd = load(name, spec)
    splits: dict[str, Iterator | None] = {}
    for ours, theirs in spec["splits"].items():
        if theirs is None:
            splits[ours] = None
            continue
        if theirs not in dd:
            raise ScratchError(f"data.datasets.{name}.splits.{ours} = {theirs!r}: {spec['path']} has no such split "
                               f"(it has: {', '.join(dd)}); use null to carve it from train")
        splits[ours] = _rows(f"{spec['path']}[{theirs}]", dd[theirs])
    features = dd[spec["splits"]["train"]].features
    return splits, {column: _names(feature) for column, feature in features.items()}


def _rows(label: str, ds) -> Iterator:
    for i, row in enumerate(ds):
        yield f"{label} row {i}", row


def _names(feature) -> list[str] | None:
    from datasets import ClassLabel

    inner = getattr(feature, "feature", feature)  # Sequence(ClassLabel) or List(ClassLabel)
    return inner.names if isinstance(inner, ClassLabel) else None
