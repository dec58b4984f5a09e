"""The params a stage's job gets: what the stage table declares for it (dag.declared), and
nothing else. Both front ends rerun a job when one of its declared keys changes; a stage that read
another key would go stale without a word, so reading one raises, naming the stage and the key.

The view is a read-only dict: the sections above a declared key are views too, a declared key's
value is a plain copy. What it holds is all it can show (json.dumps of it, the report's params
hash, sees only the declared keys)."""

from __future__ import annotations

import copy

from . import dag


class UndeclaredParamError(LookupError):
    """A stage read a params key the table does not declare for it: a bug in the stage or the table
    (not a KeyError, so that no `except KeyError` can hide it)."""


class StageParams(dict):
    """A read-only view of the params under `path`: the declared keys below it that params hold
    (`allowed`: those it may be asked for, held or not)."""

    def __init__(self, items: dict, job: dag.Job, path: str, allowed: set[str]):
        super().__init__(items)
        self._job, self._path, self._allowed = job, path, allowed

    def _check(self, key) -> None:
        if key not in self._allowed:
            dotted = f"{self._path}.{key}" if self._path else str(key)
            raise UndeclaredParamError(
                f"stage {self._job.stage} ({self._job.dvc_stage}) read params key {dotted!r}, which the stage "
                f"table does not declare for it, so changing it would not rerun the job: declare it in "
                f"src/scratchlm/dag.py (its Stage's params, or its methods' `reads` in methods.py), or stop reading it")

    def __getitem__(self, key):
        self._check(key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        self._check(key)
        return dict.get(self, key, default)

    def __contains__(self, key) -> bool:
        self._check(key)
        return dict.__contains__(self, key)

    def _read_only(self, *args, **kwargs):
        raise TypeError(f"the params of stage {self._job.stage} are read-only")

    __setitem__ = __delitem__ = setdefault = update = pop = popitem = clear = _read_only  # type: ignore[assignment]

    def __reduce__(self):  # pickled (datasets' fingerprints, multiprocessing) as the plain data it holds
        return dict, (dict(self),)

    def __deepcopy__(self, memo):
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}


def for_job(params: dict, job: dag.Job) -> StageParams:
    """The view of validated `params` that a job's stage gets."""
    keys = dag.declared(job)
    keys = [k for k in keys if not any(k.startswith(other + ".") for other in keys)]  # a section holds its keys
    return _view(params, job, "", [k.split(".") for k in keys])


def _view(node: dict, job: dag.Job, path: str, keys: list[list[str]]) -> StageParams:
    """The view of `node` (at `path`) holding the keys (split, relative to it) below it."""
    items, allowed = {}, {k[0] for k in keys}
    for name in [n for n in node if n in allowed]:  # in params' order: the report's tables follow it
        below = [k[1:] for k in keys if k[0] == name]
        if any(not k for k in below):  # declared itself: its value, whole
            items[name] = copy.deepcopy(node[name])
        else:
            items[name] = _view(node[name], job, f"{path}.{name}" if path else name, below)
    return StageParams(items, job, path, allowed)
