"""Readers for the user's own files: CSV/TSV, JSON, JSON Lines (gzipped too), Parquet and the
CoNLL column format. Each yields `(where, record)` with `where` = "file:line" (or "file row N"),
so a bad row is reported at its place in one line."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Iterator

from .errors import ScratchError

FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "conll")
QUOTING = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE, "all": csv.QUOTE_ALL}
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
             ".parquet": "parquet", ".conll": "conll", ".txt": "conll", ".iob": "conll", ".bio": "conll"}


def detect_format(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    fmt = _SUFFIXES.get(suffixes[-1].lower()) if suffixes else None
    if fmt is None:
        raise ScratchError(f"{path}: cannot tell the format from the extension; set format: "
                           f"({', '.join(FORMATS)}) in the dataset's params")
    return fmt


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _delimited(path: Path, delimiter: str, quoting: str) -> Iterator[tuple[str, dict]]:
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=QUOTING[quoting])
        header = next(reader, None)
        if not header:
            raise ScratchError(f"{path}: empty file; a header row naming the columns is needed")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row:
                continue
            if len(row) != len(header):
                raise ScratchError(f"{where}: {len(row)} fields where the header has {len(header)} "
                                   f"(quoting: {quoting}; GLUE-style TSV needs quoting: none)")
            yield where, dict(zip(header, row))


def _json_lines(path: Path) -> Iterator[tuple[str, dict]]:
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                where = f"{path}:{number}"
                yield where, _object(json.loads, line, where)


def _json(path: Path) -> Iterator[tuple[str, dict]]:
    with _open_text(path) as f:
        data = _object(json.load, f, str(path), expect=(list, dict))
    rows = data.get("data") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ScratchError(f"{path}: expected a list of objects (or {{\"data\": [...]}}); for one object "
                           f"per line use a .jsonl file")
    for i, row in enumerate(rows):
        yield f"{path} item {i}", _object(lambda r: r, row, f"{path} item {i}")


def _object(parse, source, where: str, expect=(dict,)):
    try:
        value = parse(source)
    except json.JSONDecodeError as e:
        raise ScratchError(f"{where}: invalid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(value, expect):
        raise ScratchError(f"{where}: expected a JSON object, found {type(value).__name__}")
    return value


def _parquet(path: Path) -> Iterator[tuple[str, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise ScratchError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
    for i, row in enumerate(table.to_pylist()):
        yield f"{path} row {i}", row


def _conll(path: Path, tag_column: int) -> Iterator[tuple[str, dict]]:
    """Blank lines end sentences; -DOCSTART- lines are skipped; token is the first column."""
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if tokens:
                    yield f"{path}:{start}", {"tokens": tokens, "tags": tags}
                tokens, tags = [], []
                continue
            if len(parts) < 2 or not -len(parts) <= tag_column < len(parts):
                raise ScratchError(f"{path}:{number}: {len(parts)} column(s), no tag column {tag_column} "
                                   f"(set tag_column in the dataset's params)")
            if not tokens:
                start = number
            tokens.append(parts[0])
            tags.append(parts[tag_column])
    if tokens:
        yield f"{path}:{start}", {"tokens": tokens, "tags": tags}


def read(path: Path, fmt: str = "auto", quoting: str = "minimal", tag_column: int = -1) -> Iterator[tuple[str, dict]]:
    if not path.exists():
        raise ScratchError(f"{path}: file not found")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt in ("csv", "tsv"):
        return _delimited(path, "," if fmt == "csv" else "\t", quoting)
    if fmt == "jsonl":
        return _json_lines(path)
    if fmt == "json":
        return _json(path)
    if fmt == "parquet":
        return _parquet(path)
    return _conll(path, tag_column)
