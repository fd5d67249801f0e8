"""HTTP GET for polling sources: timeouts, a body size limit read as a stream, errors named by reason.

No retry here: a polling source's next attempt is its retry, scheduled with backoff by the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


class FetchError(Exception):
    def __init__(self, reason: str, detail: str, retry_after: float | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class Response:
    status: int
    headers: httpx.Headers
    body: bytes


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def get(
    client: httpx.Client,
    url: str,
    *,
    timeout_s: float,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Response:
    """The response of a GET (200 or 304); FetchError for timeouts, refused connections, statuses and size."""
    try:
        with client.stream("GET", url, headers=headers, params=params, timeout=httpx.Timeout(timeout_s)) as resp:
            if resp.status_code == 304:
                return Response(304, resp.headers, b"")
            if resp.status_code == 429:
                raise FetchError("http_429", "rate limited", _retry_after(resp.headers.get("retry-after")))
            if resp.status_code >= 400:
                raise FetchError(f"http_{resp.status_code}", f"{url} answered {resp.status_code}")
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError("too_large", f"{url} declares {declared} bytes (limit {max_bytes})")
            chunks, size = [], 0
            for chunk in resp.iter_bytes():  # decoded bytes: a small gzip bomb counts at its real size
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError("too_large", f"{url} sent more than {max_bytes} bytes")
                chunks.append(chunk)
            return Response(resp.status_code, resp.headers, b"".join(chunks))
    except httpx.TimeoutException as exc:
        raise FetchError("timeout", f"{url}: no answer within {timeout_s:.0f}s") from exc
    except httpx.TransportError as exc:
        raise FetchError("connect", f"{url}: {type(exc).__name__}: {exc}") from exc
