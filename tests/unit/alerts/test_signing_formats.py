from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from alerts import formats
from alerts.alert import Alert
from alerts.signing import SIGNATURE_HEADER, SignatureError, sign, verify
from alerts.targets import WebhookTarget
from alerts.webhooks import build_request, post_once
from finpulse.settings import load_settings

NOW = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)
ALERT = Alert(
    id="a1", fingerprint="f1", rule_id="r1", rule_name='Neg "share"', kind="negative_share", severity="critical",
    group_by="ticker", group_value="ACME", scope={"topic": "earnings", "ticker": None}, metric="negative_share",
    value=0.8, threshold=0.5, doc_count=20, window_start=NOW, window_end=NOW, started_at=NOW,
    message="80% <negative> & worse", sample_doc_ids=["d1", "d2"],
)  # fmt: skip


def test_signature_roundtrip_and_rejections() -> None:
    body = b'{"x":1}'
    header = sign("k", body, timestamp=1_000)
    assert verify("k", body, header, now=1_010) == 1_000
    with pytest.raises(SignatureError, match="does not match"):
        verify("other", body, header, now=1_010)
    with pytest.raises(SignatureError, match="does not match"):
        verify("k", b'{"x":2}', header, now=1_010)
    with pytest.raises(SignatureError, match="off"):
        verify("k", body, header, now=2_000, tolerance_s=300)
    with pytest.raises(SignatureError, match="missing"):
        verify("k", body, None)
    with pytest.raises(SignatureError, match="t="):
        verify("k", body, "v1=abc")
    rotated = f"{header},v1={sign('new', body, timestamp=1_000).split('v1=')[1]}"
    assert verify("new", body, rotated, now=1_000) == 1_000
    with pytest.raises(ValueError):
        sign("", body)


def test_generic_format_is_the_documented_contract() -> None:
    body = formats.render(ALERT, event="firing", fmt="generic", delivery_id="d", sent_at=NOW, receiver="t")
    assert body["schema"] == "finpulse.alert.v1" and body["event"] == "firing" and body["delivery_id"] == "d"
    assert body["sent_at"] == "2031-01-02T03:04:00Z"
    assert Alert.model_validate(body["alert"]) == ALERT


def test_alertmanager_format_matches_webhook_v4() -> None:
    resolved = ALERT.model_copy(update={"status": "resolved", "resolved_at": NOW})
    firing = formats.alertmanager(ALERT, receiver="am")
    assert {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
            "commonAnnotations", "externalURL", "alerts"} <= set(firing)  # fmt: skip
    assert firing["version"] == "4" and firing["status"] == "firing"
    item = firing["alerts"][0]
    assert item["endsAt"] == "0001-01-01T00:00:00Z" and item["fingerprint"] == "f1"
    assert item["labels"] == {"alertname": 'Neg "share"', "rule_id": "r1", "kind": "negative_share",
                              "severity": "critical", "topic": "earnings", "ticker": "ACME"}  # fmt: skip
    assert firing["groupKey"] == '{}:{alertname="Neg \\"share\\""}'
    assert formats.alertmanager(resolved, receiver="am")["alerts"][0]["endsAt"] == "2031-01-02T03:04:00Z"


def test_slack_format_escapes_markup() -> None:
    body = formats.slack(ALERT, event="firing")
    assert body["text"].startswith(":red_circle:")
    assert "&lt;negative&gt; &amp; worse" in body["blocks"][0]["text"]["text"]
    assert "<negative>" not in json.dumps(body)


def test_request_is_signed_over_the_exact_body() -> None:
    settings = load_settings(data_dir="/tmp/finpulse-unit", alerts_webhook_secret="default-key")
    target = WebhookTarget(name="t", url="http://x.invalid/h")
    body, headers = build_request(settings, target, ALERT, event="firing", delivery_id="k1")
    assert headers["Idempotency-Key"] == "k1"
    verify("default-key", body, headers[SIGNATURE_HEADER], idempotency_key="k1")
    with pytest.raises(SignatureError, match="Idempotency-Key"):  # replayed under a new key: refused
        verify("default-key", body, headers[SIGNATURE_HEADER], idempotency_key="k2")
    own = WebhookTarget(name="t", url="http://x.invalid/h", secret="s3cr3t-value")
    body, headers = build_request(settings, own, ALERT, event="x", delivery_id="k")
    verify("s3cr3t-value", body, headers[SIGNATURE_HEADER], idempotency_key="k")
    assert "s3cr3t-value" not in repr(own)


@pytest.mark.parametrize(
    ("status", "delivered", "retryable"),
    [(200, True, False), (204, True, False), (500, False, True), (503, False, True), (429, False, True),
     (400, False, False), (401, False, False), (404, False, False)],
)  # fmt: skip
def test_post_once_classifies_outcomes(status: int, delivered: bool, retryable: bool) -> None:
    settings = load_settings(data_dir="/tmp/finpulse-unit", alerts_webhook_secret="k")
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status, text="nope")))
    result = post_once(settings, WebhookTarget(name="t", url="http://x.invalid/"), ALERT, event="firing",
                       delivery_id="d", attempt=2, http=http)  # fmt: skip
    assert (result.ok, result.retryable, result.http_status, result.attempt) == (delivered, retryable, status, 2)


def test_post_once_transport_errors_are_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    settings = load_settings(data_dir="/tmp/finpulse-unit")
    http = httpx.Client(transport=httpx.MockTransport(refuse))
    result = post_once(settings, WebhookTarget(name="t", url="http://x.invalid/", secret="s"), ALERT, event="firing",
                       delivery_id="d", http=http)  # fmt: skip
    assert not result.ok and result.retryable and result.http_status is None and "ConnectError" in result.error
