"""The endpoint's users: the full-access user and the read-only analyst, both from settings.

Neither may have an empty password (settings generate them per install). The analyst carries server-side limits
that the engine context gets before ``readonly`` is set, so the analyst can neither lift them with SET nor (see
statement_guard.py) with a SETTINGS clause.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from finpulse.settings import Settings
from finpulse.stack.clickhouse.errors import AUTHENTICATION_FAILED, ClickHouseError
from finpulse.stack.clickhouse.http_protocol import Credentials


@dataclass(frozen=True)
class User:
    name: str
    password: str
    readonly: int  # ClickHouse's readonly level, applied to every engine context of this user
    limits: dict[str, str] = field(default_factory=dict)  # settings fixed for every context of this user
    hidden_tables: frozenset[str] = frozenset()  # tables this user may not read (statement_guard.py)

    @property
    def is_admin(self) -> bool:
        return self.readonly == 0


class PasswordlessUserError(ValueError):
    pass


def analyst_limits(settings: Settings) -> dict[str, str]:
    return {
        "max_execution_time": str(settings.clickhouse_analyst_max_execution_time_s),
        "max_memory_usage": str(settings.clickhouse_analyst_max_memory_usage),
        "max_result_rows": str(settings.clickhouse_analyst_max_result_rows),
        "max_rows_to_read": str(settings.clickhouse_analyst_max_rows_to_read),
        "result_overflow_mode": "throw",
        "read_overflow_mode": "throw",
        "timeout_overflow_mode": "throw",
    }


class Users:
    def __init__(self, users: list[User]) -> None:
        for user in users:
            if not user.password:
                raise PasswordlessUserError(
                    f"ClickHouse user {user.name!r} has an empty password: the local endpoint refuses to start "
                    "without passwords (unset FINPULSE_CLICKHOUSE_PASSWORD / FINPULSE_CLICKHOUSE_ANALYST_PASSWORD "
                    "to use the generated ones, see `finpulse config --show-secrets`)"
                )
        self._by_name = {user.name: user for user in users}

    @classmethod
    def from_settings(cls, settings: Settings) -> Users:
        users = [User(settings.clickhouse_user, settings.clickhouse_password, 0)]
        if settings.clickhouse_analyst_user and settings.clickhouse_analyst_user != settings.clickhouse_user:
            users.append(
                User(
                    settings.clickhouse_analyst_user,
                    settings.clickhouse_analyst_password,
                    1,
                    analyst_limits(settings),
                    frozenset(t.strip() for t in settings.clickhouse_analyst_hidden_tables.split(",") if t.strip()),
                )
            )
        return cls(users)

    def authenticate(self, credentials: Credentials) -> User:
        user = self._by_name.get(credentials.user)
        # Compare even for an unknown user so timing does not tell which names exist.
        expected = user.password if user else "\x00unknown"
        ok = hmac.compare_digest(expected.encode(), credentials.password.encode())
        if user is None or not ok or not credentials.password:
            raise ClickHouseError(
                AUTHENTICATION_FAILED,
                f"{credentials.user}: Authentication failed: password is incorrect, or there is no user with such name",
            )
        return user
