"""The dead-letter queue: a message that is not a valid raw document, byte for byte, with the reason in headers
(finpulse-dlq-reason, finpulse-dlq-field, finpulse-source-topic/partition/offset)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stream.batch import Reject
from stream.sinks.kafka import TopicSink


class DlqSink(TopicSink):
    def __init__(self, topic: Any) -> None:
        super().__init__("dlq", topic)

    async def write_rejects(self, rejects: Sequence[Reject]) -> None:
        await self.write([(r.message.key, r.message.value or b"", r.headers()) for r in rejects])
