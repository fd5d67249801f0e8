"""Publishing to a Kafka topic through the faust app's producer, waiting for the broker's acknowledgement."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from stream.sinks import SinkUnavailableError


class TopicSink:
    """Sends a batch of (key, value, headers) and returns once the broker acknowledged every message."""

    def __init__(self, name: str, topic: Any) -> None:
        self.name = name
        self.topic = topic

    async def write(self, records: Sequence[tuple[bytes | None, bytes, Sequence[tuple[str, bytes]] | None]]) -> None:
        from aiokafka.errors import KafkaError

        # The app's producer directly: bytes in, bytes out, so faust's per-message codec and Message bookkeeping
        # (about 1 ms per message on a busy 2-core machine) buy nothing here.
        producer = self.topic.app.producer
        name = self.topic.get_topic_name()
        try:
            pending = [await producer.send(name, key, value, None, None, headers) for key, value, headers in records]
            await asyncio.gather(*pending)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise SinkUnavailableError(self.name, f"{type(exc).__name__}: {exc}"[:300]) from exc
