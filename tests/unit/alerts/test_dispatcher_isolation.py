"""The dispatcher works on destinations side by side: a slow target, a target whose attempt raises, and one with a
URL no longer valid never stop or delay deliveries to the others."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from alerts import dispatcher as dispatcher_module
from alerts.dispatcher import Dispatcher
from alerts.outbox import OutboxEntry
from alerts.targets import WebhookTarget
from finpulse.settings import load_settings
from tests.unit.alerts.test_signing_formats import ALERT


class _Publisher:
    def close(self) -> None:
        pass


def _entry(target: str, n: int) -> OutboxEntry:
    return OutboxEntry.new(
        alert_id=f"a{n}", event="firing", channel="webhook", target=target, payload=ALERT.model_dump_json()
    )


def test_slow_and_raising_targets_do_not_delay_the_others(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(data_dir=tmp_path, alerts_webhook_secret="k", alerts_webhook_timeout_s=5)
    entries = [_entry("slow", 1), _entry("slow", 2), _entry("raises", 3), _entry("ok", 4)]
    targets = [
        WebhookTarget(name="slow", url="http://slow.invalid/"),
        WebhookTarget(name="raises", url="http://raises.invalid/"),
        WebhookTarget(name="ok", url="http://ok.invalid/"),
    ]
    written: list[OutboxEntry] = []
    logged: list[Any] = []
    monkeypatch.setattr(dispatcher_module.repo, "pending_outbox", lambda client: entries)
    monkeypatch.setattr(dispatcher_module.repo, "write_outbox", lambda client, rows: written.extend(rows))
    monkeypatch.setattr(dispatcher_module.repo, "targets", lambda *a, **k: targets)
    monkeypatch.setattr(dispatcher_module.repo, "log_delivery", lambda client, result: logged.append(result))
    started = time.monotonic()
    arrived: dict[str, float] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host.split(".")[0]
        arrived.setdefault(host, time.monotonic() - started)
        if host == "slow":
            time.sleep(1.0)
        if host == "raises":
            raise RuntimeError("a bug in one target's client")
        return httpx.Response(200)

    d = Dispatcher(settings, client=None, publisher=_Publisher())  # type: ignore[arg-type]
    d.http = httpx.Client(transport=httpx.MockTransport(handler))
    try:
        assert d.run_once() == 4
    finally:
        d.close()
    assert arrived["ok"] < 0.5, arrived  # not behind the slow target's two seconds
    by_target = {(w.target, w.alert_id): w.status for w in written}
    assert by_target[("ok", "a4")] == "delivered"
    assert by_target[("slow", "a1")] == "delivered" and by_target[("slow", "a2")] == "delivered"
    assert by_target[("raises", "a3")] == "gave_up" and len(logged) == 4  # its own failure, logged
