"""The one way FinPulse code gets a ClickHouse client: the local endpoint, or settings.clickhouse_url.

    client = create_client(settings)                  # full access, database settings.clickhouse_database
    client = create_client(settings, readonly=True)   # the analyst user (read-only profile)
    client = create_client(settings, database=None)   # no default database (before migrations create it)

Explicit keyword overrides win over settings and pass through to ``clickhouse_connect.get_client``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from finpulse.settings import Settings

_SCHEMES = {"http": False, "https": True, "clickhouse": False, "clickhouses": True}


class ClickHouseUnavailableError(RuntimeError):
    """The endpoint did not answer in time; the message names it and says what to check."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    secure: bool
    user: str | None = None
    password: str | None = None
    database: str | None = None


def parse_clickhouse_url(url: str) -> Target:
    """``http[s]://user:pass@host:port/database`` (``?database=`` works too); ports default to 8123 / 8443."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"clickhouse_url {url!r}: scheme must be one of {sorted(_SCHEMES)}")
    if not parts.hostname:
        raise ValueError(f"clickhouse_url {url!r} has no host")
    secure = _SCHEMES[parts.scheme]
    try:
        port = parts.port or (8443 if secure else 8123)
    except ValueError as exc:
        raise ValueError(f"clickhouse_url {url!r}: bad port") from exc
    database = parts.path.strip("/") or parse_qs(parts.query).get("database", [None])[0]
    return Target(
        host=parts.hostname,
        port=port,
        secure=secure,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        database=unquote(database) if database else None,
    )


def _target(settings: Settings) -> Target:
    if settings.clickhouse_url:
        return parse_clickhouse_url(settings.clickhouse_url)
    return Target(settings.clickhouse_host, settings.clickhouse_port, False)


def client_kwargs(settings: Settings, *, readonly: bool = False, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments create_client hands to clickhouse_connect.get_client (kept apart for tests)."""
    target = _target(settings)
    if readonly:
        username, password = settings.clickhouse_analyst_user, settings.clickhouse_analyst_password
    else:
        username = target.user or settings.clickhouse_user
        password = target.password if target.password is not None else settings.clickhouse_password
    kwargs: dict[str, Any] = {
        "host": target.host,
        "port": target.port,
        "secure": target.secure,
        "interface": "https" if target.secure else "http",
        "username": username,
        "password": password,
        "database": target.database or settings.clickhouse_database,
        "connect_timeout": 5,
        "send_receive_timeout": 300,
    }
    kwargs.update(overrides)
    if kwargs.get("database") is None:
        kwargs.pop("database", None)
    return kwargs


def create_client(settings: Settings, *, readonly: bool = False, **overrides: Any) -> Any:
    """A clickhouse_connect client for the configured endpoint; ``readonly`` uses the analyst credentials."""
    import clickhouse_connect

    return clickhouse_connect.get_client(**client_kwargs(settings, readonly=readonly, **overrides))


def wait_until_ready(settings: Settings, timeout: float = 60.0, interval: float = 0.2) -> None:
    """Block until the endpoint answers /ping; ClickHouseUnavailableError after ``timeout`` seconds."""
    from finpulse.stack.clickhouse.launch import clickhouse_ping, http_base_url

    deadline = time.monotonic() + timeout
    while True:
        if clickhouse_ping(settings, timeout=min(1.0, timeout)):
            return
        if time.monotonic() >= deadline:
            raise ClickHouseUnavailableError(
                f"ClickHouse at {http_base_url(settings)} did not answer /ping within {timeout:g}s: start the local "
                "stack (`finpulse up`) or check FINPULSE_CLICKHOUSE_URL / FINPULSE_CLICKHOUSE_PORT."
            )
        time.sleep(interval)
