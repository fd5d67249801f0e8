"""finpulse.probe asks the endpoint itself, whatever http_proxy says, and answers bad replies without raising."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from finpulse import probe

ROUTES = {
    "/healthz": (200, b'{"status": "ok"}\n'),
    "/ping": (200, b"Ok.\n"),
    "/broken": (503, b'{"status": "down"}'),
    "/text": (200, b"not json"),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = ROUTES.get(self.path, (404, b"no such page"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> str:
    proxy = f"http://127.0.0.1:{_dead_port()}"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return proxy


def test_probe_ignores_http_proxy(server: str, dead_proxy: str) -> None:
    # control: a client that follows the environment goes to the dead proxy and fails
    with pytest.raises(urllib.error.URLError):
        urllib.request.build_opener().open(f"{server}/healthz", timeout=2)
    assert probe.ok(f"{server}/healthz", timeout_s=2)
    assert probe.get_json(f"{server}/healthz", timeout_s=2) == {"status": "ok"}
    assert probe.ok(f"{server}/ping", timeout_s=2, body=b"Ok.")
    assert probe.get_text(f"{server}/ping", timeout_s=2) == "Ok.\n"


def test_probe_answers_bad_replies_without_raising(server: str) -> None:
    assert probe.get(f"{server}/broken", timeout_s=2) == probe.Answer(503, b'{"status": "down"}')
    assert not probe.ok(f"{server}/broken", timeout_s=2)
    assert probe.get_json(f"{server}/broken", timeout_s=2) is None  # JSON, but not a 200
    assert probe.get_json(f"{server}/text", timeout_s=2) is None  # a 200, but not JSON
    assert not probe.ok(f"{server}/ping", timeout_s=2, body=b"ok")  # another body
    assert probe.get(f"{server}/missing", timeout_s=2) == probe.Answer(404, b"no such page")
    with pytest.raises(probe.ProbeError, match="answered HTTP 503"):
        probe.get_text(f"{server}/broken", timeout_s=2)


def test_probe_of_nothing_is_none() -> None:
    url = f"http://127.0.0.1:{_dead_port()}/healthz"
    assert probe.get(url, timeout_s=1) is None and not probe.ok(url, timeout_s=1)
    assert probe.get_json(url, timeout_s=1) is None
    with pytest.raises(probe.ProbeError, match="does not answer"):
        probe.get_text(url, timeout_s=1)
    assert probe.get("not a url", timeout_s=1) is None


def test_part_health_checks_ignore_http_proxy(server: str, dead_proxy: str) -> None:
    """The parts' own checks go through the probe: a healthy endpoint stays healthy behind a dead proxy."""
    from alerts import service as alerts_service
    from finpulse.settings import load_settings
    from ingest import service as ingest_service
    from stream import service as stream_service

    port = int(server.rsplit(":", 1)[1])
    settings = load_settings(ingest_port=port, alerts_port=port, stream_port=port)
    assert ingest_service.ingest_healthy(settings)
    assert alerts_service.healthy(settings)
    assert stream_service.health(settings) == {"status": "ok"}
