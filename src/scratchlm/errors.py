"""The one exception type a user sees: a single line naming the key, file or line, and the fix."""


class ScratchError(Exception):
    """A user-facing failure. The CLI prints its message as one line and exits 1; no traceback."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def first_line(e: BaseException) -> str:
    """An exception's first line (at most 200 characters): the part of it worth one line."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def cannot_load(what: str, e: BaseException, instead: str) -> ScratchError:
    """The one message for a hub resource that did not load (offline, unknown id, missing files)."""
    return ScratchError(f"{what}: cannot load it ({type(e).__name__}: {first_line(e)}). Offline? {instead}")
