"""/healthz and /metrics of a stream worker, served from a thread so they answer even while the event loop is busy
(and so a stalled loop shows up as a stale heartbeat instead of a hung probe)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

LOOP_STALL_S = 30.0  # an event loop that has not ticked this long is reported unhealthy


class HealthServer:
    def __init__(self, host: str, port: int, snapshot: Callable[[], dict[str, Any]], metrics: Callable[[], bytes]):
        self.snapshot = snapshot
        self.metrics = metrics
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stream-health", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server naming
                path = self.path.split("?")[0].rstrip("/")
                if path == "/healthz":
                    body = outer.snapshot()
                    stalled = time.time() - body.get("loop_beat", 0.0) > LOOP_STALL_S
                    body["status"] = "stalled" if stalled else body.get("status", "ok")
                    self._send(503 if stalled else 200, json.dumps(body).encode(), "application/json")
                elif path == "/metrics":
                    self._send(200, outer.metrics(), "text/plain; version=0.0.4; charset=utf-8")
                else:
                    self._send(404, b'{"error": "try /healthz or /metrics"}', "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # probes are not worth a log line
                return

        return Handler
