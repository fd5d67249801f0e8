"""The stream's Kafka topics, declared with their partition counts from settings (the same counts
`finpulse.stack.topics.ensure_topics` creates them with). Values stay bytes: the stream validates raw input itself,
so a message that is not JSON reaches the DLQ instead of failing inside faust's deserializer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finpulse.settings import Settings


@dataclass(frozen=True)
class StreamTopics:
    raw: Any
    classified: Any
    dlq: Any


def declare(app: Any, settings: Settings) -> StreamTopics:
    def topic(name: str, partitions: int) -> Any:
        return app.topic(
            name,
            partitions=partitions,
            replicas=settings.kafka_replication_factor,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    return StreamTopics(
        raw=topic(settings.topic_raw, settings.partitions_raw),
        classified=topic(settings.topic_classified, settings.partitions_classified),
        dlq=topic(settings.topic_dlq, settings.partitions_dlq),
    )
