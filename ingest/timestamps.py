"""Timestamps as sources write them: datetimes, ISO 8601, RFC 2822 (feeds), epoch seconds or milliseconds."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime, timedelta

from finpulse.timeutil import as_utc
from ingest.item import Rejected

_FUTURE_SLACK = timedelta(days=1)
_EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)


def parse_timestamp(value: object, now: datetime) -> datetime:
    """A timezone-aware UTC datetime; naive values are UTC. Raises Rejected('bad_timestamp')."""
    if isinstance(value, time.struct_time):  # feedparser's *_parsed fields, always UTC
        value = datetime(*value[:6], tzinfo=UTC)
    if isinstance(value, bool):
        raise Rejected("bad_timestamp", f"{value!r} is not a time")
    if isinstance(value, int | float):
        seconds = value / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            value = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise Rejected("bad_timestamp", f"epoch {value!r} out of range") from exc
    elif isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").replace(".", "", 1).isdigit():
            return parse_timestamp(float(text), now)
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                value = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError) as exc:
                raise Rejected("bad_timestamp", f"cannot read {text[:40]!r} as a time") from exc
    if not isinstance(value, datetime):
        raise Rejected("bad_timestamp", f"{type(value).__name__} is not a time")
    value = as_utc(value)
    if value > now + _FUTURE_SLACK:
        raise Rejected("bad_timestamp", f"{value.isoformat()} is in the future")
    if value < _EARLIEST:
        raise Rejected("bad_timestamp", f"{value.isoformat()} is before 1970")
    return value
