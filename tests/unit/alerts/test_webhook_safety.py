"""Webhook safety: URLs validated when a target is created, always signed (a generated per-install secret when
none is set), non-public destinations refused when the setting is on, secrets kept out of ClickHouse rows."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from alerts import secret_store
from alerts.signing import SIGNATURE_HEADER, verify
from alerts.targets import WebhookTarget
from alerts.webhooks import build_request, post_once
from finpulse.settings import load_settings
from tests.unit.alerts.test_signing_formats import ALERT


@pytest.mark.parametrize(
    "url",
    ["http://x:99999/", "http://x:0/", "ftp://x/", "http:///path", "http://x:port/", "http://a b/", "http://u:p@x/"],
)
def test_bad_target_urls_are_refused_when_created(url: str) -> None:
    with pytest.raises(ValueError):
        WebhookTarget(name="t", url=url)


def test_good_urls_pass() -> None:
    for url in ("http://x:1/", "https://hooks.example.com:65535/a?b=c", "http://[::1]:8331/"):
        assert WebhookTarget(name="t", url=url).url == url


def test_without_a_secret_webhooks_are_signed_with_a_generated_0600_install_secret(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    target = WebhookTarget(name="t", url="http://x.invalid/")
    body, headers = build_request(settings, target, ALERT, event="firing", delivery_id="d1")
    secret = secret_store.default_signing_secret(settings)
    assert len(secret) >= 24
    verify(secret, body, headers[SIGNATURE_HEADER], idempotency_key="d1")
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "secrets.json").st_mode) == 0o600
    assert secret_store.default_signing_secret(load_settings(data_dir=tmp_path / "data")) == secret  # stable


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8331/", "http://10.1.2.3/", "http://169.254.169.254/", "http://[::1]/"]
)
def test_non_public_targets_are_refused_when_the_setting_is_on(tmp_path: Path, url: str) -> None:
    settings = load_settings(data_dir=tmp_path, alerts_webhook_block_private=True, alerts_webhook_secret="k")
    sent: list[httpx.Request] = []
    http = httpx.Client(transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200)))
    result = post_once(settings, WebhookTarget(name="t", url=url), ALERT, event="firing", delivery_id="d", http=http)
    assert not result.ok and not result.retryable and result.error.startswith("refused") and sent == []


def test_the_allow_list_lets_internal_receivers_through(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        alerts_webhook_block_private=True,
        alerts_webhook_allow_hosts="10.0.0.0/8, risk-hooks.internal",
        alerts_webhook_secret="k",
    )
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(204)))
    for url in ("http://10.1.2.3/", "http://risk-hooks.internal/"):
        result = post_once(settings, WebhookTarget(name="t", url=url), ALERT, event="e", delivery_id="d", http=http)
        assert result.ok, result.error


def test_secret_store_keeps_values_out_of_the_reference(tmp_path: Path) -> None:
    ref = secret_store.put(tmp_path, "target:t:secret", "s3cr3t")
    assert "s3cr3t" not in ref and secret_store.resolve(tmp_path, ref) == "s3cr3t"
    assert secret_store.resolve(tmp_path, "legacy-plain") == "legacy-plain"
    assert stat.S_IMODE(os.stat(tmp_path / secret_store.FILE).st_mode) == 0o600
