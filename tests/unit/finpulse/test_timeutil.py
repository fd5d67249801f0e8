"""The one UTC helper: naive values are read as UTC, aware ones converted; now is aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from finpulse.timeutil import as_utc, utcnow


def test_naive_is_taken_as_utc_and_aware_is_converted() -> None:
    assert as_utc(datetime(2026, 12, 2, 5, 0)) == datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    shanghai = datetime(2026, 12, 2, 13, 0, tzinfo=timezone(timedelta(hours=8)))
    converted = as_utc(shanghai)
    assert converted.tzinfo is UTC and converted.hour == 5


def test_now_is_aware_utc() -> None:
    before = datetime.now(UTC)
    now = utcnow()
    assert now.tzinfo is UTC and before <= now <= datetime.now(UTC)
