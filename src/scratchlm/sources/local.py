"""The `local` source: the user's own files under data/external/ — CSV/TSV, JSON, JSON Lines
(gzipped too), Parquet, the CoNLL column format, and plain text (a corpus: one document per line,
or per blank-line paragraph). Each reader yields `(where, record)` with `where` = "file:line" (or
"file row N"), so a bad row is reported at its place in one line; `records` gives them per split
in the columns the dataset's spec names."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Iterator

from ..errors import ScratchError, first_line
from ..kinds import FORMATS, suffix_format
from . import iob
from .form import DOCUMENT

QUOTING = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE, "all": csv.QUOTE_ALL}


def detect_format(path: Path, kind: str | None = None) -> str:
    fmt = suffix_format(path, kind)
    if fmt is None:
        raise ScratchError(f"{path}: cannot tell the format from the extension; set format: "
                           f"({', '.join(FORMATS)}) in the dataset's params")
    return fmt


def _open_text(path: Path):
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column's name
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _delimited(path: Path, delimiter: str, quoting: str) -> Iterator[tuple[str, dict]]:
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=QUOTING[quoting])
        try:
            yield from _rows(path, reader, quoting)
        except csv.Error as e:  # e.g. an unclosed quote swallowing the rest of the file
            raise ScratchError(f"{path}:{reader.line_num}: {e} (quoting: {quoting}; an unclosed quote? "
                               f"GLUE-style TSV needs quoting: none)") from None


def _rows(path: Path, reader, quoting: str) -> Iterator[tuple[str, dict]]:
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
                yield where, _record(_parse(json.loads, line, path, number), where)


def _json(path: Path) -> Iterator[tuple[str, dict]]:
    with _open_text(path) as f:
        data = _parse(json.load, f, path)
    rows = data.get("data") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ScratchError(f"{path}: expected a list of objects (or {{\"data\": [...]}}); for one object "
                           f"per line use a .jsonl file")
    for i, row in enumerate(rows):
        yield f"{path} item {i}", _record(row, f"{path} item {i}")


def _parse(parse, source, path: Path, line: int | None = None):
    try:
        return parse(source)
    except json.JSONDecodeError as e:
        raise ScratchError(f"{path}:{line or e.lineno}: invalid JSON ({e.msg} at column {e.colno}); fix the JSON "
                           f"there") from None


_JSON_TYPES = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


def _record(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ScratchError(f"{where}: expected a JSON object ({{\"column\": value, ...}}), found "
                           f"{_JSON_TYPES[type(value)]}")
    return value


def _parquet(path: Path) -> Iterator[tuple[str, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise ScratchError(f"{path}: not a readable Parquet file ({first_line(e)}); write it again, or set the "
                           f"dataset's format to what it is") from None
    for i, row in enumerate(table.to_pylist()):
        yield f"{path} row {i}", row


def _conll(path: Path, tag_column: int) -> Iterator[tuple[str, dict]]:
    """Blank lines end sentences; -DOCSTART- lines start a document (each sentence records its
    document's number, by which a split carved from train keeps documents whole); token is the
    first column; every line has as many columns as the first."""
    tokens: list[str] = []
    tags: list[str] = []
    start = document = 0
    first = None  # (columns, line) of the first token line
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if tokens:
                    yield f"{path}:{start}", {"tokens": tokens, "tags": tags, DOCUMENT: document}
                tokens, tags = [], []
                document += bool(parts)
                continue
            first = first or (len(parts), number)
            tags.append(_conll_tag(f"{path}:{number}", parts, first, tag_column))
            if not tokens:
                start = number
            tokens.append(parts[0])
    if tokens:
        yield f"{path}:{start}", {"tokens": tokens, "tags": tags, DOCUMENT: document}


def _conll_tag(where: str, parts: list[str], first: tuple[int, int], tag_column: int) -> str:
    n, (width, line) = len(parts), first
    if n < 2:
        raise ScratchError(f"{where}: 1 column ({parts[0]!r}); a CoNLL line needs the token and its tag, "
                           f"separated by whitespace (a blank line ends a sentence)")
    if n != width:
        raise ScratchError(f"{where}: {n} columns where line {line} has {width}; every line needs the same "
                           f"columns (a token with a space in it? columns are split on whitespace)")
    if not -n <= tag_column < n:
        raise ScratchError(f"{where}: {n} column(s), no tag column {tag_column} "
                           f"(set tag_column in the dataset's params; -1: the last)")
    tag = parts[tag_column]
    if not iob.check(tag):
        raise ScratchError(f"{where}: tag {tag!r} is not O, B-TYPE or I-TYPE (read from column {tag_column}; "
                           f"fix the tag, or set tag_column in the dataset's params to the tags' column)")
    return tag


def _plain_text(path: Path, unit: str) -> Iterator[tuple[str, dict]]:
    """Plain text: each line a document, or (`paragraph`) each run of lines up to a blank line."""
    with _open_text(path) as f:
        if unit == "line":
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield f"{path}:{number}", {"text": line.strip()}
            return
        lines, start = [], 0
        for number, line in enumerate(f, 1):
            if line.strip():
                start = start or number
                lines.append(line.strip())
            elif lines:
                yield f"{path}:{start}", {"text": " ".join(lines)}
                lines, start = [], 0
        if lines:
            yield f"{path}:{start}", {"text": " ".join(lines)}


def _records(path: Path, fmt: str, quoting: str, tag_column: int, unit: str) -> Iterator[tuple[str, dict]]:
    if fmt in ("csv", "tsv"):
        return _delimited(path, "," if fmt == "csv" else "\t", quoting)
    if fmt == "jsonl":
        return _json_lines(path)
    if fmt == "json":
        return _json(path)
    if fmt == "parquet":
        return _parquet(path)
    if fmt == "text":
        return _plain_text(path, unit)
    return _conll(path, tag_column)


def _checked(path: Path, records: Iterator[tuple[str, dict]]) -> Iterator[tuple[str, dict]]:
    """The records, with what no reader names at a row said in one line too: bytes that are not
    UTF-8 (at their line), a broken or unreadable file, a file without rows."""
    empty = True
    try:
        for record in records:
            empty = False
            yield record
    except UnicodeDecodeError as e:
        raise ScratchError(f"{_undecodable(path)}: not UTF-8 text (byte 0x{e.object[e.start]:02x}); save the "
                           f"file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    except (OSError, EOFError, zlib.error) as e:  # gzip: not gzip, truncated, corrupt; permissions
        raise ScratchError(f"{path}: cannot read it ({type(e).__name__}: {first_line(e)}); is it what its "
                           f"extension says?") from None
    if empty:
        raise ScratchError(f"{path}: no rows in it (an empty file?); a split needs at least one example")


def _undecodable(path: Path) -> str:
    """`file:line` of the first line that is not UTF-8."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        number = next((n for n, line in enumerate(f, 1) if not _is_utf8(line)), None)
    return f"{path}:{number}" if number else str(path)


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read(path: Path, fmt: str = "auto", quoting: str = "minimal", tag_column: int = -1, kind: str | None = None,
         unit: str = "line") -> Iterator[tuple[str, dict]]:
    if not path.exists():
        raise ScratchError(f"{path}: file not found; put it there, or correct its path in the dataset's files")
    if not path.is_file():
        raise ScratchError(f"{path}: not a file (a folder?); the dataset's files name one file per split")
    fmt = detect_format(path, kind) if fmt == "auto" else fmt
    return _checked(path, _records(path, fmt, quoting, tag_column, unit))


def records(name: str, spec: dict) -> tuple[dict[str, Iterator | None], dict]:
    """Per split, (where, row) pairs from its file (None: no file, carve it from train), in the
    columns `spec["columns"]` names; and the class names the files declare (none)."""
    splits: dict[str, Iterator | None] = {}
    for split in ("train", "validation", "test"):
        path = spec["files"].get(split)
        if path is None:
            splits[split] = None
            continue
        found = read(Path(path), spec["format"], spec["quoting"], spec["tag_column"], spec["kind"], spec["text_unit"])
        fmt = detect_format(Path(path), spec["kind"]) if spec["format"] == "auto" else spec["format"]
        cols = spec["columns"]
        if fmt == "conll":  # CoNLL columns have no names: give them the ones `columns` expects
            found = ((w, {cols["tokens"]: r["tokens"], cols["tags"]: r["tags"], DOCUMENT: r[DOCUMENT]})
                     for w, r in found)
        if fmt == "text":
            found = ((w, {cols["text"]: r["text"]}) for w, r in found)
        splits[split] = found
    return splits, {}
