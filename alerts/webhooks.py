"""One webhook POST: render the target's format, sign it, send it, classify the outcome.

This module owns the *single attempt* and decides what is safe to retry: transport errors (connect refused,
timeouts, a dropped connection) and the statuses in ``RETRYABLE_STATUSES``. Every request carries an idempotency
key, so a retry after a timeout whose request did arrive is harmless to a receiver that honours it. Retry timing
and the retry log live in the dispatcher (alerts/dispatcher.py).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import httpx

from alerts import formats
from alerts.alert import Alert
from alerts.secret_store import default_signing_secret
from alerts.signing import EVENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign
from alerts.targets import DeliveryResult, WebhookTarget
from finpulse.settings import Settings

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "finpulse-alerts/1"


def build_request(
    settings: Settings, target: WebhookTarget, alert: Alert, *, event: str, delivery_id: str
) -> tuple[bytes, dict[str, str]]:
    """The exact body bytes and headers of one delivery (signed over these bytes)."""
    payload = formats.render(
        alert,
        event=event,
        fmt=target.format,
        delivery_id=delivery_id,
        sent_at=datetime.now(UTC),
        receiver=target.name,
        external_url=settings.dashboard_public_url,
    )
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        IDEMPOTENCY_HEADER: delivery_id,
        EVENT_HEADER: event,
    }
    secret = target.secret_value("") or default_signing_secret(settings)
    headers[SIGNATURE_HEADER] = sign(secret, body, idempotency_key=delivery_id)  # always signed
    return body, headers


class TargetRefused(ValueError):
    """The target's address is not allowed (loopback/private while FINPULSE_ALERTS_WEBHOOK_BLOCK_PRIVATE is on)."""


def check_address(settings: Settings, url: str) -> None:
    """Refuse loopback, private, link-local and reserved destinations when the setting says so. Checked on the
    resolved addresses at send time, so a DNS name that points inside (or is rebound to) is refused as well."""
    if not settings.alerts_webhook_block_private:
        return
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    allowed = [a.strip().lower() for a in settings.alerts_webhook_allow_hosts.split(",") if a.strip()]
    if host in allowed:
        return
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc}") from exc
    networks = []
    for entry in allowed:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if any(address in net for net in networks):
            continue
        if not address.is_global or address.is_multicast:
            raise TargetRefused(
                f"{host} resolves to {address}, a non-public address; allow it with FINPULSE_ALERTS_WEBHOOK_ALLOW_HOSTS"
            )


def post_once(
    settings: Settings,
    target: WebhookTarget,
    alert: Alert,
    *,
    event: str,
    delivery_id: str,
    attempt: int = 1,
    http: httpx.Client | None = None,
) -> DeliveryResult:
    """One POST; never raises (HTTP, transport and refusal failures are the result)."""
    started = time.perf_counter()
    status: int | None = None
    error = ""
    retryable = False
    try:
        check_address(settings, target.url)
        body, headers = build_request(settings, target, alert, event=event, delivery_id=delivery_id)
        if http is None:
            with httpx.Client(timeout=settings.alerts_webhook_timeout_s) as own:
                response = own.post(target.url, content=body, headers=headers)
        else:
            response = http.post(target.url, content=body, headers=headers, timeout=settings.alerts_webhook_timeout_s)
        status = response.status_code
        if not 200 <= status < 300:
            error = response.text[:500]
            retryable = status in RETRYABLE_STATUSES
    except httpx.TransportError as exc:
        error = f"{type(exc).__name__}: {exc}"
        retryable = True
    except TargetRefused as exc:
        error = f"refused: {exc}"
    except Exception as exc:  # an invalid URL or a client error: this target's failure only, never the dispatcher's
        log.warning("webhook attempt failed", exc_info=True, extra={"target": target.name})
        error = f"{type(exc).__name__}: {exc}"[:500]
    latency_ms = round((time.perf_counter() - started) * 1000)
    return DeliveryResult(
        target=target.name,
        delivery_id=delivery_id,
        alert_id=alert.id,
        event=event,
        channel="webhook",
        attempt=attempt,
        status="delivered" if status is not None and 200 <= status < 300 else "failed",
        http_status=status,
        error=error,
        latency_ms=latency_ms,
        retryable=retryable,
    )


def test_alert() -> Alert:
    """A clearly marked alert for `test_send`: receivers see event 'test' and rule id 'finpulse-test'."""
    now = datetime.now(UTC).replace(microsecond=0)
    return Alert(
        id="test",
        fingerprint="test",
        rule_id="finpulse-test",
        rule_name="FinPulse test alert",
        kind="negative_share",
        severity="info",
        metric="negative_share",
        value=0.0,
        threshold=0.0,
        window_start=now,
        window_end=now,
        started_at=now,
        message="This is a test notification from FinPulse; no action is needed.",
    )
