"""What `finpulse up` runs, in start order (the parts table: finpulse/stack/parts.py), and the two server parts.

External servers (FINPULSE_KAFKA_BOOTSTRAP / FINPULSE_CLICKHOUSE_URL) are not started, only checked and set up
(topics, migrations), so one code path serves both modes."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from finpulse.settings import Settings
from finpulse.stack import kafka, parts, topics
from finpulse.stack.errors import StackError
from finpulse.stack.supervisor import ServiceSpec


def kafka_spec(settings: Settings) -> ServiceSpec:
    if not settings.kafka_is_local:
        return ServiceSpec(
            name="kafka",
            endpoint=settings.kafka_servers,
            healthy=partial(topics.kafka_healthy, settings),
            after_start=partial(topics.ensure_topics, settings),
            note="external cluster",
        )
    fallback = kafka.use_fallback(settings)
    return ServiceSpec(
        name="kafka",
        endpoint=settings.kafka_servers,
        healthy=partial(topics.kafka_healthy, settings),
        argv=partial(kafka.fallback_command, settings) if fallback else partial(_kafka_argv, settings),
        after_start=partial(topics.ensure_topics, settings),
        stop_timeout_s=60.0,  # a controlled shutdown flushes every partition's log
        note="IN-MEMORY fallback broker: data is lost on stop"
        if fallback
        else f"Apache Kafka {settings.kafka_version}",
        ports=(settings.kafka_port,) if fallback else (settings.kafka_port, settings.kafka_controller_port),
        host=settings.kafka_host,
        independent=True,
    )


def _kafka_argv(settings: Settings) -> list[str]:
    kafka.prepare(settings)
    return kafka.broker_command(settings)


def clickhouse_spec(settings: Settings) -> ServiceSpec:
    from finpulse.stack.clickhouse import launch as local
    from finpulse.stack.clickhouse.binary import find_binary
    from warehouse import migrate

    spec = ServiceSpec(
        name="clickhouse",
        endpoint=local.http_base_url(settings),
        healthy=partial(local.clickhouse_ping, settings),
        after_start=partial(migrate.migrate, settings),
    )
    if settings.clickhouse_is_local:
        spec.argv = partial(local.clickhouse_command, settings)
        spec.ports = (settings.clickhouse_port,)
        spec.host = settings.clickhouse_host
        binary = find_binary(settings)
        spec.note = f"ClickHouse server {binary}" if binary else "embedded ClickHouse engine (chdb)"
    else:
        spec.note = "external server"
    return spec


def service_specs(settings: Settings) -> list[ServiceSpec]:
    """The parts FINPULSE_STACK_SERVICES names, in its order (default: every part of the table, in start order)."""
    wanted = [n.strip() for n in settings.stack_services.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in parts.NAMES]
    if unknown:
        raise StackError(f"unknown part {unknown[0]!r} in FINPULSE_STACK_SERVICES; known: {', '.join(parts.NAMES)}")
    return [parts.service_spec(name, settings) for name in wanted]


def server_specs(settings: Settings) -> list[ServiceSpec]:
    """The server parts of the table (Kafka, ClickHouse) for these settings."""
    return [parts.service_spec(name, settings) for name in parts.SERVERS]


def wait_and_set_up(
    specs: list[ServiceSpec], *, timeout_s: float, echo: Callable[[str], None], external_only: bool = False
) -> None:
    """What `finpulse up` does for a server before the parts that use it: wait until healthy, then its set-up
    (topics, migrations). `finpulse init` and docker's finpulse-init (``external_only``: nothing local) run this."""
    for spec in specs:
        if external_only and spec.argv is not None:
            raise StackError(
                f"{spec.name} is not external here: set FINPULSE_KAFKA_BOOTSTRAP and FINPULSE_CLICKHOUSE_URL"
            )
        deadline = time.monotonic() + timeout_s
        while not spec.healthy():
            if time.monotonic() > deadline:
                raise StackError(f"{spec.name} at {spec.endpoint} did not answer within {timeout_s:.0f} s")
            time.sleep(1.0)
        if spec.after_start is not None:
            spec.after_start()
        echo(f"{spec.name:<11} ready  {spec.endpoint}")
