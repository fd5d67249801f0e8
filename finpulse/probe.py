"""Health probes of FinPulse's own HTTP endpoints: never through a proxy, never raising.

A probe asks a part on its own address; an ``http_proxy``/``https_proxy`` in the environment would send it to the
proxy instead (and a dead or strict proxy makes a healthy part look down), so probes ignore every proxy setting.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MAX_BODY_BYTES = 4 * 1024 * 1024  # health and metrics answers are small; a probe never reads without bound


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status == 200


def get(url: str, *, timeout_s: float) -> Answer | None:
    """GET ``url`` directly; the answer (any status), or None when nothing answered (refused, timeout, bad URL)."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as response:
            return Answer(response.status, response.read(MAX_BODY_BYTES))
    except urllib.error.HTTPError as exc:  # an answer all the same: 4xx/5xx
        try:
            return Answer(exc.code, exc.read(MAX_BODY_BYTES) if exc.fp else b"")
        except OSError:
            return Answer(exc.code, b"")
        finally:
            exc.close()
    except (urllib.error.URLError, OSError, ValueError):
        return None


def ok(url: str, *, timeout_s: float, body: bytes | None = None) -> bool:
    """True when ``url`` answers 200 (and, given ``body``, exactly that body, surrounding whitespace aside)."""
    answer = get(url, timeout_s=timeout_s)
    return answer is not None and answer.ok and (body is None or answer.body.strip() == body)


def get_json(url: str, *, timeout_s: float) -> Any | None:
    """The JSON of a 200 answer, or None (no answer, another status, or not JSON)."""
    answer = get(url, timeout_s=timeout_s)
    if answer is None or not answer.ok:
        return None
    try:
        return json.loads(answer.body)
    except ValueError:
        return None


def get_text(url: str, *, timeout_s: float) -> str:
    """The text of a 200 answer; raises ``ProbeError`` saying why otherwise (for callers that report the reason)."""
    answer = get(url, timeout_s=timeout_s)
    if answer is None:
        raise ProbeError(f"{url} does not answer")
    if not answer.ok:
        raise ProbeError(f"{url} answered HTTP {answer.status}")
    return answer.body.decode("utf-8", errors="replace")


class ProbeError(Exception):
    """An endpoint did not answer 200."""
