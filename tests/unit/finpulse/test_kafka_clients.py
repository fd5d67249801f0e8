"""finpulse.kafka_clients: every client gets the settings' brokers and security, and the caller's own options."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import certifi
import faust
import kafka
import pytest
from pydantic import ValidationError

from finpulse import kafka_clients
from finpulse.settings import Settings, load_settings

CAFILE = Path(certifi.where())
DEAD = "127.0.0.1:1"  # nothing listens; api_version below keeps kafka-python from connecting at construction


def _sasl_ssl() -> Settings:
    return load_settings(
        kafka_bootstrap=f"{DEAD}, 127.0.0.1:2",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=CAFILE,
    )


def test_plaintext_clients_get_brokers_and_client_id_only() -> None:
    settings = load_settings(kafka_bootstrap="k1:9092,k2:9092")
    assert kafka_clients.connection_options(settings, client_id="finpulse-x") == {
        "bootstrap_servers": ["k1:9092", "k2:9092"],
        "client_id": "finpulse-x",
    }
    local = load_settings(kafka_port=19092)
    assert kafka_clients.connection_options(local, client_id="c")["bootstrap_servers"] == ["127.0.0.1:19092"]
    assert kafka_clients.faust_broker(settings) == {"broker": ["kafka://k1:9092", "kafka://k2:9092"]}


def test_security_settings_reach_kafka_python_options() -> None:
    options = kafka_clients.connection_options(_sasl_ssl(), client_id="finpulse-x")
    assert options["bootstrap_servers"] == [DEAD, "127.0.0.1:2"]
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "svc",
        "s3cret",
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    ssl_only = load_settings(kafka_bootstrap=DEAD, kafka_security_protocol="SSL")
    options = kafka_clients.connection_options(ssl_only, client_id="c")
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options and "ssl_context" in options


def test_factories_pass_settings_and_caller_options_to_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, dict[str, Any]]] = []
    for name in ("KafkaProducer", "KafkaConsumer", "KafkaAdminClient"):
        monkeypatch.setattr(kafka, name, lambda name=name, **kw: made.append((name, kw)) or name)
    settings = _sasl_ssl()
    assert kafka_clients.producer(settings, client_id="p", acks="all", linger_ms=20) == "KafkaProducer"
    assert kafka_clients.consumer(settings, client_id="c", group_id=None) == "KafkaConsumer"
    assert kafka_clients.admin(settings, client_id="a", request_timeout_ms=5_000) == "KafkaAdminClient"
    (_, p), (_, c), (_, a) = made
    assert (p["client_id"], p["acks"], p["linger_ms"]) == ("p", "all", 20)
    assert c["group_id"] is None and a["request_timeout_ms"] == 5_000
    for _, kw in made:
        assert kw["bootstrap_servers"] == [DEAD, "127.0.0.1:2"] and kw["security_protocol"] == "SASL_SSL"
        assert kw["sasl_plain_password"] == "s3cret"


def test_callers_cannot_bypass_the_settings() -> None:
    settings = load_settings(kafka_bootstrap=DEAD)
    with pytest.raises(TypeError, match="bootstrap_servers come"):
        kafka_clients.producer(settings, client_id="p", bootstrap_servers="elsewhere:9092")
    with pytest.raises(TypeError, match="security_protocol"):
        kafka_clients.consumer(settings, client_id="c", security_protocol="PLAINTEXT")
    with pytest.raises(ValueError, match="client_id"):
        kafka_clients.admin(settings, client_id="")
    with pytest.raises(TypeError):
        kafka_clients.producer(settings, "positional-client-id")  # type: ignore[misc]


def test_real_kafka_python_clients_accept_the_options() -> None:
    """kafka-python refuses unknown configs: the factory's option names are the library's."""
    settings = load_settings(
        kafka_bootstrap=DEAD,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
    )
    consumer = kafka_clients.consumer(settings, client_id="finpulse-test", api_version=(2, 8, 0), group_id=None)
    try:
        assert consumer.config["security_protocol"] == "SASL_PLAINTEXT"
        assert consumer.config["sasl_plain_username"] == "svc" and consumer.config["client_id"] == "finpulse-test"
        assert consumer.config["bootstrap_servers"] == [DEAD]
    finally:
        consumer.close()
    producer = kafka_clients.producer(settings, client_id="finpulse-test", api_version=(2, 8, 0), acks="all")
    try:
        assert producer.config["security_protocol"] == "SASL_PLAINTEXT" and producer.config["acks"] == -1
    finally:
        producer.close(timeout=1)


def test_faust_gets_the_same_brokers_and_credentials() -> None:
    options = kafka_clients.faust_broker(_sasl_ssl())
    assert options["broker"] == [f"kafka://{DEAD}", "kafka://127.0.0.1:2"]
    creds = options["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    assert (creds.username, creds.password) == ("svc", "s3cret")
    plain_sasl = load_settings(
        kafka_bootstrap=DEAD, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u", kafka_sasl_password="p"
    )
    assert kafka_clients.faust_broker(plain_sasl)["broker_credentials"].protocol.value == "SASL_PLAINTEXT"
    ssl_only = kafka_clients.faust_broker(load_settings(kafka_bootstrap=DEAD, kafka_security_protocol="SSL"))
    assert isinstance(ssl_only["broker_credentials"], faust.SSLCredentials)

    from stream.app import faust_options

    stream = faust_options(_sasl_ssl(), 0)
    assert stream["broker"] == options["broker"] and isinstance(stream["broker_credentials"], faust.SASLCredentials)


def test_connection_is_plain_data_of_the_settings() -> None:
    conn = kafka_clients.Connection.of(_sasl_ssl())
    assert conn.servers == (DEAD, "127.0.0.1:2") and conn.bootstrap == f"{DEAD},127.0.0.1:2"
    assert "s3cret" not in repr(conn)  # configs holding it get logged
    assert kafka_clients.Connection.of(conn) is conn
    from_conn = kafka_clients.connection_options(conn, client_id="c")
    from_settings = kafka_clients.connection_options(_sasl_ssl(), client_id="c")
    assert from_conn.pop("ssl_context") is not None and from_settings.pop("ssl_context") is not None
    assert from_conn == from_settings


def test_sasl_without_credentials_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="FINPULSE_KAFKA_SASL_USERNAME"):
        load_settings(kafka_bootstrap=DEAD, kafka_security_protocol="SASL_SSL", kafka_sasl_username="svc")
    with pytest.raises(ValidationError, match="local broker speaks PLAINTEXT only"):
        load_settings(kafka_security_protocol="SSL")
