"""Atomic writes: a stage writes into a temporary sibling and renames it into place on success,
so nothing half-written is ever left where a later stage (or DVC) would read it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _tmp_sibling(path: Path, is_dir: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: Path | str, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write `path` into; on success replace `path` with it."""
    path = Path(path)
    tmp = _tmp_sibling(path, is_dir)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    _remove(path)
    if not is_dir:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are ordinary files
    os.replace(tmp, path)


def write_json(path: Path | str, obj) -> None:
    """Indented; a list of records (a plot's rows) one record per line."""
    if isinstance(obj, list):
        text = "[\n" + ",\n".join(json.dumps(row) for row in obj) + "\n]\n"
    else:
        text = json.dumps(obj, indent=2) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: Path | str):
    return json.loads(Path(path).read_text(encoding="utf-8"))
