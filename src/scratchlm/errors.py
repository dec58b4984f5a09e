"""The one exception type a user sees: a single line naming the key, file or line, and the fix."""


class ScratchError(Exception):
    """A user-facing failure. The CLI prints its message as one line and exits 1; no traceback."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
