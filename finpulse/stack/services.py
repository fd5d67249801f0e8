"""What `finpulse up` runs, in start order. External servers (FINPULSE_KAFKA_BOOTSTRAP / FINPULSE_CLICKHOUSE_URL)
are not started, only checked and set up (topics, migrations), so one code path serves both modes."""

from __future__ import annotations

import importlib
import sys
from functools import partial

from finpulse.settings import Settings
from finpulse.stack import kafka, topics
from finpulse.stack.errors import StackError
from finpulse.stack.supervisor import ServiceSpec


def _kafka(settings: Settings) -> ServiceSpec:
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


def _clickhouse(settings: Settings) -> ServiceSpec:
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


_PARTS: dict[str, str] = {
    # name -> "module:function" returning the part's ServiceSpec; imported only when the part is asked for
    "kafka": "finpulse.stack.services:_kafka",
    "clickhouse": "finpulse.stack.services:_clickhouse",
    "model": "classifier.service:service_spec",
    "ingest": "ingest.service:service_spec",
    "stream": "stream.service:service_spec",
    "trainer": "classifier.background:service_spec",
    "alerts": "alerts.service:service_spec",
    "dashboard": "dashboard.service:service_spec",
}


def service_specs(settings: Settings) -> list[ServiceSpec]:
    """The parts of the stack in start order (FINPULSE_STACK_SERVICES picks which)."""
    specs = []
    for name in [n.strip() for n in settings.stack_services.split(",") if n.strip()]:
        if name not in _PARTS:
            raise StackError(f"unknown part {name!r} in FINPULSE_STACK_SERVICES; known: {', '.join(_PARTS)}")
        module_name, func = _PARTS[name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # a part not built yet
            raise
        specs.append(getattr(module, func)(settings))
    return specs


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs a FinPulse module with this interpreter (children share the venv)."""
    return [sys.executable, "-m", module, *args]
