"""Webhook targets and the result of one delivery attempt."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

WebhookFormat = Literal["generic", "slack", "alertmanager"]
DeliveryStatus = Literal["delivered", "failed", "gave_up"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,63}$")


def validate_url(value: str) -> str:
    """A webhook URL: http(s), a host, a port in 1..65535; anything else is refused when the target is created
    (a bad port found only at send time used to take the whole dispatcher down)."""
    from urllib.parse import urlsplit

    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError("webhook url must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"webhook url is not valid: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise ValueError("webhook url must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("webhook url has no host")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"webhook url port {port} is not in 1..65535")
    if parts.username or parts.password:
        raise ValueError("webhook url must not carry credentials; use the target's secret")
    return value


class WebhookTarget(BaseModel):
    """Where alerts are POSTed. ``secret`` None means the settings' FINPULSE_ALERTS_WEBHOOK_SECRET (or, when saving,
    keep the stored one); it is never printed (SecretStr)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Unique name; rules list target names.")
    url: str = Field(min_length=8, max_length=2_000)
    format: WebhookFormat = "generic"
    secret: SecretStr | None = None
    enabled: bool = True
    origin: Literal["file", "ui"] = "ui"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"target name {value!r} must match {_NAME.pattern}")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return validate_url(value)

    @field_validator("secret", mode="before")
    @classmethod
    def _blank_secret(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return None if value is None or value == "" else value

    def secret_value(self, default: str) -> str:
        return self.secret.get_secret_value() if self.secret is not None else default


class DeliveryResult(BaseModel):
    """One delivery attempt: what the delivery log records."""

    model_config = ConfigDict(frozen=True)

    target: str
    delivery_id: str
    alert_id: str
    event: str
    channel: Literal["webhook", "kafka"] = "webhook"
    attempt: int = 1
    status: DeliveryStatus
    http_status: int | None = None
    error: str = ""
    latency_ms: int = 0
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "delivered"
