"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<idempotency key>.<body>``, sent as
``X-FinPulse-Signature: t=<unix>,v1=<hex>``. The key is signed too, so a captured request cannot be replayed under
a fresh Idempotency-Key to make a receiver act on it twice.

The timestamp inside the signed text lets a receiver refuse replays of an old request; comparing with
``hmac.compare_digest`` keeps the check constant-time. Verify against the raw body bytes, before parsing JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-FinPulse-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-FinPulse-Event"


class SignatureError(ValueError):
    """A request's signature is missing, malformed, stale or wrong; the message says which."""


def _mac(secret: str, timestamp: int, key: str, body: bytes) -> str:
    signed = f"{timestamp}.{key}.".encode() + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None, *, idempotency_key: str = "") -> str:
    """The signature header value for ``body`` sent with ``idempotency_key``."""
    if not secret:
        raise ValueError("cannot sign with an empty secret")
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={_mac(secret, ts, idempotency_key, body)}"


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    idempotency_key: str = "",
    tolerance_s: int = 300,
    now: float | None = None,
) -> int:
    """Check a signature header (over the body and the request's Idempotency-Key); returns its timestamp or raises
    SignatureError."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        ts = int(fields["t"][0])
    except (KeyError, ValueError) as exc:
        raise SignatureError("signature header has no valid t=<unix seconds>") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise SignatureError(f"signature timestamp is {int(current - ts)}s off (tolerance {tolerance_s}s)")
    expected = _mac(secret, ts, idempotency_key, body)
    # Several v1= values are accepted so a sender can sign with an old and a new secret while rotating.
    if not any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", [])):
        raise SignatureError("signature does not match (wrong secret, or the body or Idempotency-Key was changed)")
    return ts
