"""What the stack supervisor calls to run and probe the local ClickHouse endpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

from finpulse import probe
from finpulse.settings import Settings
from finpulse.stack.clickhouse.binary import binary_command, find_binary, write_config


def clickhouse_command(settings: Settings) -> list[str]:
    """argv that launches the local endpoint: a real ``clickhouse`` binary when present, else the embedded one.

    Settings reach the child through its environment (``settings.child_env()``), not through argv.
    """
    binary = find_binary(settings)
    if binary:
        return binary_command(binary, write_config(settings))
    return [sys.executable, "-m", "finpulse.stack.clickhouse.server"]


def clickhouse_ping(settings: Settings, timeout: float = 1.0) -> bool:
    """True when the endpoint (local, or settings.clickhouse_url) answers ``/ping`` with ``Ok.``."""
    return probe.ok(f"{http_base_url(settings)}/ping", timeout_s=timeout, body=b"Ok.")


def http_base_url(settings: Settings) -> str:
    """scheme://host:port of the endpoint, credentials stripped."""
    if settings.clickhouse_url:
        from warehouse.client import parse_clickhouse_url

        target = parse_clickhouse_url(settings.clickhouse_url)
        return f"{'https' if target.secure else 'http'}://{target.host}:{target.port}"
    return f"http://{settings.clickhouse_host}:{settings.clickhouse_port}"


def start_local_endpoint(settings: Settings, *, stdout: Any = None, stderr: Any = None) -> subprocess.Popen[bytes]:
    """Start the endpoint as a child process with these settings (tests, benchmarks; the supervisor has its own
    process management and uses clickhouse_command). Does not wait for it: see client.wait_until_ready."""
    env = {**os.environ, **settings.child_env()}
    return subprocess.Popen(clickhouse_command(settings), env=env, stdout=stdout, stderr=stderr)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
