"""Closing the gap between "Kafka acknowledged" and "SQLite committed".

A worker killed in that gap restarts with its old source positions and fetches the same items again. Before it
produces anything, it reads the raw topic from the watermarks stored with its last commit to the current end and
remembers every document it wrote itself (meta.worker): the re-fetched items are then duplicates by id, so the
restart neither loses nor repeats documents.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import closing

from kafka import TopicPartition
from kafka.errors import KafkaError

from finpulse import kafka_clients
from finpulse.contracts import ContractError, parse_raw
from ingest.producer import BrokerUnavailable
from ingest.store import StateStore

log = logging.getLogger(__name__)

SCAN_TIMEOUT_S = 120.0


def recover(kafka: kafka_clients.Connection, topic: str, store: StateStore, worker_id: str) -> int:
    """Remember this worker's acknowledged-but-uncommitted documents; returns how many were found."""
    servers = kafka.bootstrap
    try:
        consumer = kafka_clients.consumer(
            kafka,
            group_id=None,
            enable_auto_commit=False,
            client_id=f"finpulse-ingest-recovery-{worker_id}",
            request_timeout_ms=15_000,
            fetch_max_bytes=16 * 1024 * 1024,
        )
    except KafkaError as exc:
        raise BrokerUnavailable(f"recovery cannot reach Kafka at {servers}: {exc}") from exc
    with closing(consumer):
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise BrokerUnavailable(f"topic {topic} does not exist yet (is the stack up?)")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        end = consumer.end_offsets(tps)
        marks = store.watermarks(topic)
        if not marks:  # first start on this state dir: nothing of ours can be on the topic
            store.set_watermarks(topic, {tp.partition: off for tp, off in end.items()})
            return 0
        begin = consumer.beginning_offsets(tps)
        todo = {}
        for tp in tps:
            start = max(marks.get(tp.partition, begin[tp]), begin[tp])
            if start < end[tp]:
                consumer.seek(tp, start)
                todo[tp] = end[tp]
            else:
                consumer.pause(tp)
        found = []
        deadline = time.monotonic() + SCAN_TIMEOUT_S
        while todo:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"recovery scan of {topic} did not finish in {SCAN_TIMEOUT_S:.0f}s")
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for rec in records:
                    if rec.offset >= todo.get(tp, -1):
                        continue
                    try:
                        payload = json.loads(rec.value)
                        if payload.get("meta", {}).get("worker") == worker_id:
                            found.append(parse_raw(payload))
                    except (ValueError, AttributeError, ContractError):
                        continue  # someone else's message; not ours to judge
            for tp in list(todo):
                if consumer.position(tp) >= todo[tp]:
                    consumer.pause(tp)
                    del todo[tp]
    store.commit(found, {}, {(topic, tp.partition): off for tp, off in end.items()})
    if found:
        log.info("recovered %d acknowledged documents not yet checkpointed", len(found), extra={"topic": topic})
    return len(found)
