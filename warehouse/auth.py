"""The endpoint's users: the full-access user and the read-only analyst, both from settings."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from finpulse.settings import Settings
from warehouse.errors import AUTHENTICATION_FAILED, ClickHouseError
from warehouse.protocol import Credentials


@dataclass(frozen=True)
class User:
    name: str
    password: str
    readonly: int  # ClickHouse's readonly level, applied to every engine context of this user


class Users:
    def __init__(self, users: list[User]) -> None:
        self._by_name = {user.name: user for user in users}

    @classmethod
    def from_settings(cls, settings: Settings) -> Users:
        users = [User(settings.clickhouse_user, settings.clickhouse_password, 0)]
        if settings.clickhouse_analyst_user and settings.clickhouse_analyst_user != settings.clickhouse_user:
            users.append(User(settings.clickhouse_analyst_user, settings.clickhouse_analyst_password, 1))
        return cls(users)

    def authenticate(self, credentials: Credentials) -> User:
        user = self._by_name.get(credentials.user)
        # Compare even for an unknown user so timing does not tell which names exist.
        expected = user.password if user else "\x00unknown"
        ok = hmac.compare_digest(expected.encode(), credentials.password.encode())
        if user is None or not ok:
            raise ClickHouseError(
                AUTHENTICATION_FAILED,
                f"{credentials.user}: Authentication failed: password is incorrect, or there is no user with such name",
            )
        return user
