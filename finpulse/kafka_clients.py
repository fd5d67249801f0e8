"""Every FinPulse Kafka client is built here, from the settings: the brokers (FINPULSE_KAFKA_BOOTSTRAP or the local
broker) and the security settings (FINPULSE_KAFKA_SECURITY_PROTOCOL, SASL credentials, CA file).

One keyword-only factory per library: :func:`producer`, :func:`consumer` and :func:`admin` for kafka-python (ingest,
alerts, the topic set-up, the dashboard's lag view), :func:`faust_broker` for faust / aiokafka (the stream workers).
Callers name their client and pass only what is theirs (acks, timeouts, batching), never brokers or credentials.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finpulse.settings import Settings

# Options that only the settings decide; a caller passing one would bypass them.
_FROM_SETTINGS = frozenset(
    {"bootstrap_servers", "security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"}
    | {"ssl_cafile", "ssl_context", "client_id"}
)


@dataclass(frozen=True)
class Connection:
    """Where the brokers are and how to authenticate: plain data, for code that does not hold the Settings (the
    ingest worker's config). ``Connection.of(settings)``; every factory takes it or the Settings."""

    servers: tuple[str, ...]
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: Path | None = None

    @classmethod
    def of(cls, settings: Settings | Connection) -> Connection:
        if isinstance(settings, Connection):
            return settings
        return cls(
            servers=tuple(server.strip() for server in settings.kafka_servers.split(",") if server.strip()),
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            ssl_cafile=settings.kafka_ssl_cafile,
        )

    @property
    def bootstrap(self) -> str:
        """'host:port,...' for messages."""
        return ",".join(self.servers)

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)


def connection_options(where: Settings | Connection, *, client_id: str) -> dict[str, Any]:
    """kafka-python's connection keyword arguments: brokers, client id and security (nothing else)."""
    if not client_id:
        raise ValueError("every Kafka client names itself (client_id), so broker logs and quotas can tell them apart")
    conn = Connection.of(where)
    options: dict[str, Any] = {"bootstrap_servers": list(conn.servers), "client_id": client_id}
    if conn.security_protocol != "PLAINTEXT":
        options["security_protocol"] = conn.security_protocol
    if conn.uses_ssl:
        options["ssl_context"] = conn.ssl_context()
    if conn.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = conn.sasl_mechanism
        options["sasl_plain_username"] = conn.sasl_username
        options["sasl_plain_password"] = conn.sasl_password
    return options


def _options(where: Settings | Connection, client_id: str, options: dict[str, Any]) -> dict[str, Any]:
    clash = sorted(_FROM_SETTINGS & options.keys())
    if clash:
        raise TypeError(f"{', '.join(clash)} come(s) from the settings, not from the caller")
    return {**connection_options(where, client_id=client_id), **options}


def producer(where: Settings | Connection, *, client_id: str, **options: Any) -> Any:
    """A ``kafka.KafkaProducer``; ``options`` are its own keyword arguments (acks, linger_ms, timeouts, ...)."""
    from kafka import KafkaProducer

    return KafkaProducer(**_options(where, client_id, options))


def consumer(where: Settings | Connection, *, client_id: str, **options: Any) -> Any:
    """A ``kafka.KafkaConsumer`` subscribed to nothing; ``options`` are its own keyword arguments (group_id, ...)."""
    from kafka import KafkaConsumer

    return KafkaConsumer(**_options(where, client_id, options))


def admin(where: Settings | Connection, *, client_id: str, **options: Any) -> Any:
    """A ``kafka.KafkaAdminClient``; ``options`` are its own keyword arguments (request_timeout_ms, ...)."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**_options(where, client_id, options))


def faust_broker(where: Settings | Connection) -> dict[str, Any]:
    """``faust.App`` keyword arguments for the brokers and their security (``broker``, ``broker_credentials``)."""
    conn = Connection.of(where)
    options: dict[str, Any] = {"broker": [f"kafka://{server}" for server in conn.servers]}
    if conn.security_protocol == "PLAINTEXT":
        return options
    import faust

    context = conn.ssl_context() if conn.uses_ssl else None
    if conn.security_protocol == "SSL":
        options["broker_credentials"] = faust.SSLCredentials(context)
    else:  # SASL_PLAINTEXT, or SASL_SSL with the context
        options["broker_credentials"] = faust.SASLCredentials(
            username=conn.sasl_username,
            password=conn.sasl_password,
            mechanism=conn.sasl_mechanism,
            ssl_context=context,
        )
    return options
