"""`finpulse alerts run` as the supervisor runs it: rules file synced, /healthz healthy after a tick, /metrics."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from alerts import store
from alerts.defaults import DEFAULT_RULES
from alerts.service import healthy, service_spec
from tests.integration.alerts.conftest import settings_for
from tests.stack import Stack, free_ports
from warehouse.client import create_client
from warehouse.migrate import migrate

pytestmark = pytest.mark.integration


def test_engine_service_serves_health_and_metrics(stack: Stack, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\nname = "Banks drop"\nkind = "sentiment_drop"\nthreshold = 0.4\n[rule.scope]\ntopic = "banks"\n'
        '[[target]]\nname = "ops"\nurl = "http://127.0.0.1:9/hook"\n'
    )
    database = f"alerts_svc_{uuid.uuid4().hex[:8]}"
    env = {
        **stack.env,
        "FINPULSE_CLICKHOUSE_DATABASE": database,
        "FINPULSE_ALERTS_PORT": str(free_ports(1)[0]),
        "FINPULSE_ALERTS_RULES_FILE": str(rules),
        "FINPULSE_ALERTS_INTERVAL_S": "1",
        "FINPULSE_LOG_FORMAT": "json",
    }
    settings = settings_for(stack, **{k[9:].lower(): v for k, v in env.items() if k.startswith("FINPULSE_ALERTS")},
                            clickhouse_database=database)  # fmt: skip
    migrate(settings)
    spec = service_spec(settings)
    log = tmp_path / "alerts.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(spec.argv(), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not spec.healthy():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"engine not healthy:\n{log.read_text()}"
            time.sleep(0.3)
        assert healthy(settings)
        metrics = httpx.get(f"{spec.endpoint}/metrics", timeout=5).text
        assert "finpulse_alert_evaluations_total" in metrics and "finpulse_alerts_firing" in metrics
        # the file's rule, and the default rules seeded at the first start (alerts/defaults.py)
        assert [r.id for r in store.list_rules(settings)] == ["banks-drop", *sorted(r.id for r in DEFAULT_RULES)]
        assert [t.name for t in store.list_targets(settings)] == ["ops"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, log.read_text()
        with create_client(settings) as client:
            client.command(f"DROP DATABASE IF EXISTS {database}")
