"""The foundation's promises, checked on the real local stack (or on external servers, see tests/stack.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import pytest
from kafka import TopicPartition

from finpulse import kafka_clients
from tests.stack import Stack

pytestmark = pytest.mark.integration

N_MESSAGES = 10_000


def produce(stack: Stack, topic: str, n: int, tag: str) -> None:
    producer = kafka_clients.producer(
        stack.settings, client_id="finpulse-test", acks="all", linger_ms=5, compression_type="lz4"
    )
    futures = [producer.send(topic, key=f"k{i % 17}".encode(), value=f"{tag}:{i}".encode()) for i in range(n)]
    producer.flush(timeout=60)
    for future in futures:
        assert future.get(timeout=30).offset >= 0  # acknowledged by the broker with acks=all
    producer.close()


def consume_tagged(stack: Stack, topic: str, tag: str, expected: int, group: str) -> set[str]:
    consumer = kafka_clients.consumer(
        stack.settings,
        client_id="finpulse-test",
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15_000,
    )
    consumer.subscribe([topic])
    seen: set[str] = set()
    for message in consumer:
        value = message.value.decode()
        if value.startswith(tag + ":"):
            seen.add(value)
            if len(seen) == expected:
                break
    consumer.commit()
    consumer.close()
    return seen


def test_status_reports_every_part_healthy(stack: Stack) -> None:
    proc = stack.finpulse("status", "--json")
    report = json.loads(proc.stdout)
    assert report["healthy"] is True
    assert report["parts"]["kafka"]["healthy"] is True
    assert report["parts"]["clickhouse"]["healthy"] is True


def test_topics_exist_with_configured_partitions(stack: Stack) -> None:
    consumer = kafka_clients.consumer(stack.settings, client_id="finpulse-test")
    try:
        for topic, partitions in stack.settings.topic_partitions().items():
            assert len(consumer.partitions_for_topic(topic) or ()) == partitions, topic
    finally:
        consumer.close()


def test_ten_thousand_messages_acks_all_read_by_a_group(stack: Stack) -> None:
    tag = uuid.uuid4().hex
    produce(stack, stack.settings.topic_raw, N_MESSAGES, tag)
    seen = consume_tagged(stack, stack.settings.topic_raw, tag, N_MESSAGES, group=f"test-{tag}")
    assert len(seen) == N_MESSAGES
    # the group's committed offsets cover everything: a second read from the committed position finds none of them
    consumer = kafka_clients.consumer(
        stack.settings, client_id="finpulse-test", group_id=f"test-{tag}", enable_auto_commit=False
    )
    partitions = [TopicPartition(stack.settings.topic_raw, p) for p in range(stack.settings.partitions_raw)]
    committed = sum(consumer.committed(tp) or 0 for tp in partitions)
    consumer.close()
    assert committed >= N_MESSAGES


def test_curl_answers_select_version(stack: Stack) -> None:
    from finpulse.stack.clickhouse.launch import http_base_url

    url = f"{http_base_url(stack.settings)}/?query=SELECT%20version()"
    user = f"{stack.settings.clickhouse_user}:{stack.settings.clickhouse_password}"
    curl = ["curl", "-sS", "--fail", "-u", user, url]
    out = subprocess.run(curl, capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip().split(".")[0].isdigit()
    # No password, no answer (the local endpoint's users have generated passwords).
    curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url]
    anonymous = subprocess.run(curl, capture_output=True, text=True, timeout=30)
    assert anonymous.stdout == "403"


CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, pandas as pd
    from clickhouse_connect.driver.exceptions import DatabaseError
    from warehouse.client import create_client
    from finpulse.settings import load_settings

    table, worker = sys.argv[1], int(sys.argv[2])
    client = create_client(load_settings())
    n = 1_000_000
    df = pd.DataFrame({"worker": np.full(n, worker, dtype="uint8"), "n": np.arange(n, dtype="uint64"),
                       "s": pd.Series(np.arange(n) % 1000).astype(str)})
    client.insert_df(table, df)
    mine = client.query(f"SELECT count(), sum(n) FROM {table} WHERE worker = {{w:UInt8}}", parameters={"w": worker})
    top = client.query_df(f"SELECT s, count() AS c FROM {table} WHERE worker = %(w)s GROUP BY s ORDER BY s LIMIT 3",
                          parameters={"w": worker})
    arrow = client.query_arrow(f"SELECT n FROM {table} WHERE worker = {worker} ORDER BY n LIMIT 5")
    try:
        client.query("SELECT no_such_column FROM " + table)
        error = None
    except DatabaseError as exc:
        error = str(exc)
    print(json.dumps({"count": mine.result_rows[0][0], "sum": mine.result_rows[0][1],
                      "top": top.to_dict("list"), "arrow": arrow.column("n").to_pylist(), "error": error}))
    """
)


def test_clickhouse_connect_from_two_processes_at_once(stack: Stack) -> None:
    from warehouse.client import create_client

    table = f"{stack.settings.clickhouse_database}.t_{uuid.uuid4().hex[:8]}"
    admin = create_client(stack.settings)
    admin.command(f"CREATE TABLE {table} (worker UInt8, n UInt64, s String) ENGINE = MergeTree ORDER BY (worker, n)")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT_SCRIPT, table, str(w)],
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (2, 3)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    for result in results:
        assert result["count"] == 1_000_000
        assert result["sum"] == 1_000_000 * 999_999 // 2
        assert result["top"] == {"s": ["0", "1", "10"], "c": [1000, 1000, 1000]}
        assert result["arrow"] == [0, 1, 2, 3, 4]
        assert result["error"] and "no_such_column" in result["error"]
    assert admin.query(f"SELECT count() FROM {table}").result_rows[0][0] == 2_000_000
    admin.command(f"DROP TABLE {table}")


def test_init_sets_up_servers_given_as_external(stack: Stack) -> None:
    """Production mode: the same code, pointed at servers by FINPULSE_KAFKA_BOOTSTRAP / FINPULSE_CLICKHOUSE_URL."""
    from finpulse.stack.clickhouse.launch import http_base_url

    s = stack.settings
    host_port = http_base_url(s).split("://", 1)[1]
    external = Stack(
        data_dir=stack.data_dir / "external-client",
        env={
            **stack.env,
            "FINPULSE_KAFKA_BOOTSTRAP": s.kafka_servers,
            "FINPULSE_CLICKHOUSE_URL": f"http://{s.clickhouse_user}:{s.clickhouse_password}@{host_port}",
        },
    )
    out = external.finpulse("init").stdout
    assert "kafka       ready" in out and "clickhouse  ready" in out
    report = json.loads(external.finpulse("status", "--json").stdout)
    assert report["parts"]["kafka"]["note"] == "external cluster"
    assert report["parts"]["clickhouse"]["note"] == "external server"
    assert report["healthy"] is True
