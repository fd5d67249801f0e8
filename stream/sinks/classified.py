"""The classified topic: every stored document, as ClassifiedDocument JSON keyed like its raw message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from finpulse.contracts import ClassifiedDocument
from stream.sinks.kafka import TopicSink


class ClassifiedSink(TopicSink):
    def __init__(self, topic: Any) -> None:
        super().__init__("classified", topic)

    async def write_docs(self, docs: Sequence[ClassifiedDocument]) -> None:
        await self.write([(doc.key, doc.to_json(), None) for doc in docs])
