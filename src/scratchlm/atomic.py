"""Atomic writes: a stage writes into a temporary sibling and renames it into place on success,
so nothing half-written is ever left where a later stage (or DVC) would read it. A sibling that a
killed writer left behind (SIGKILL runs no cleanup) is hidden, and the next write of the same path
removes it. And one process per job: a job holds a lock for as long as it runs, so a second run
of the same job (a rerun while a killed Snakemake's orphan still works) waits for it."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

from .errors import ScratchError
from .paths import CHECKPOINTS

JOB_LOCKS = CHECKPOINTS / ".jobs"  # <DVC stage name>.lock, holding the running job's pid


def _prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def _tmp_sibling(path: Path, is_dir: bool) -> Path:
    """`.<name>.tmp-<pid>-<random>` beside `path`: hidden, and tagged with the writer's pid."""
    prefix = f"{_prefix(path)}{os.getpid()}-"
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    return Path(name)


def _alive(pid: str) -> bool:
    """Whether the writer that tagged a temp sibling with `pid` still runs (no pid: an old one's)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Temp siblings of `path` whose writer is gone (killed, SIGKILL leaves them): remove them, so
    that no half-written copy lingers beside (or, for a file in an output folder, inside) what DVC
    hashes. A live writer's temp sibling is left alone."""
    for tmp in path.parent.glob(glob.escape(_prefix(path)) + "*"):
        if not _alive(tmp.name[len(_prefix(path)):].split("-")[0]):
            _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _set_aside(path: Path) -> Path | None:
    """Rename what is at `path` to a temp sibling (a folder cannot be replaced in one step, and
    deleting a big one is slow): `path` is then missing only between two renames."""
    if not (path.exists() or path.is_symlink()):
        return None
    old = path.with_name(f"{_prefix(path)}{os.getpid()}-old-{uuid.uuid4().hex[:8]}")
    os.rename(path, old)
    return old


@contextlib.contextmanager
def atomic_path(path: Path | str, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write `path` into; on success replace `path` with it. Temp
    siblings that a killed run left are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = _tmp_sibling(path, is_dir)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not is_dir:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are ordinary files
    old = _set_aside(path) if is_dir else None  # a file is replaced atomically by os.replace
    os.replace(tmp, path)
    if old is not None:
        _remove(old)


def write_json(path: Path | str, obj) -> None:
    """Indented; a list of records (a plot's rows) one record per line. Strict JSON: a NaN or an
    infinity is a bug to fix where it is made (write null for a figure that does not exist), not
    a bare `NaN` that DVC's metrics and other readers choke on."""
    if isinstance(obj, list):
        text = "[\n" + ",\n".join(json.dumps(row, allow_nan=False) for row in obj) + "\n]\n"
    else:
        text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: Path | str):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def upstream(path: Path | str, made_by: str) -> str:
    """An earlier stage's output (as a string for `load_from_disk`), or one line naming the
    command that makes it."""
    if not Path(path).exists():
        raise ScratchError(f"{path}: not found; run `scratchlm {made_by}` first (or `snakemake --cores all`)")
    return str(path)


@contextlib.contextmanager
def job_lock(name: str) -> Iterator[None]:
    """Hold the job's lock while it runs (the kernel drops it when the process ends, SIGKILL
    included); if another process holds it, say so and wait for it."""
    JOB_LOCKS.mkdir(parents=True, exist_ok=True)
    with open(JOB_LOCKS / f"{name}.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            print(f"{name}: waiting for the same job already running (pid {f.read().strip() or '?'}) to end",
                  file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield


def lock_holder(path: Path) -> int | None:
    """The pid of the process holding a job lock file, or None when no process does."""
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            text = f.read().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(f, fcntl.LOCK_UN)
        return None
