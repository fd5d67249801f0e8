"""Where a classified batch goes: ClickHouse (the record), the classified topic, and the DLQ for bad input.

Sinks write a whole batch or raise; the runner (stream/runner.py) owns retry, backoff and acknowledgement."""

from __future__ import annotations


class SinkUnavailableError(RuntimeError):
    """The destination cannot be reached right now; the same batch may be retried later unchanged."""

    def __init__(self, sink: str, reason: str) -> None:
        self.sink = sink
        super().__init__(f"{sink} unavailable: {reason}")


class RowsRejectedError(ValueError):
    """The destination refused the data itself; retrying the same rows cannot succeed."""
