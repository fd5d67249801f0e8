"""The local stack's one error type: its message says what went wrong and what to do."""


class StackError(RuntimeError):
    """A local-stack problem a user can fix (port in use, missing Java, corrupt data dir, failed download)."""
