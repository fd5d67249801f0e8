"""Test helpers that run the real local stack through the real `finpulse` command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from finpulse.settings import Settings, load_settings

EXTERNAL_ENV = ("FINPULSE_KAFKA_BOOTSTRAP", "FINPULSE_CLICKHOUSE_URL")


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def external_servers() -> bool:
    """Integration tests run against any compatible servers named by these two variables."""
    return all(os.environ.get(name) for name in EXTERNAL_ENV)


local_only = pytest.mark.skipif(external_servers(), reason="starts, stops or kills local server processes")


@dataclass
class Stack:
    """A FinPulse stack for tests: its settings and the environment that selects it for child processes."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls, data_dir: Path, **extra: str) -> Stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_") or k in EXTERNAL_ENV}
        env["FINPULSE_DATA_DIR"] = str(data_dir)
        env["FINPULSE_LOG_LEVEL"] = "INFO"
        env["HF_HUB_OFFLINE"] = "1"
        env["FINPULSE_STACK_SERVICES"] = "kafka,clickhouse"  # a test that needs more parts asks for them
        if external_servers():
            # Shared servers: each test stack gets its own database, topics and consumer group.
            tag = uuid.uuid4().hex[:8]
            env |= {
                "FINPULSE_CLICKHOUSE_DATABASE": f"finpulse_test_{tag}",
                "FINPULSE_TOPIC_RAW": f"finpulse.raw.{tag}",
                "FINPULSE_TOPIC_CLASSIFIED": f"finpulse.classified.{tag}",
                "FINPULSE_TOPIC_DLQ": f"finpulse.dlq.{tag}",
                "FINPULSE_TOPIC_ALERTS": f"finpulse.alerts.{tag}",
                "FINPULSE_STREAM_GROUP": f"finpulse-stream-{tag}",
            }
        else:
            names = ("KAFKA", "KAFKA_CONTROLLER", "CLICKHOUSE")
            env |= {f"FINPULSE_{name}_PORT": str(port) for name, port in zip(names, free_ports(3), strict=True)}
        # The services' own ports are free ones too, so tests never collide with a developer's running FinPulse.
        services = ("INGEST", "STREAM", "ALERTS", "ALERTS_RECEIVER", "DASHBOARD")
        env |= {f"FINPULSE_{name}_PORT": str(port) for name, port in zip(services, free_ports(5), strict=True)}
        env |= extra
        return cls(data_dir=data_dir, env=env)

    @property
    def settings(self) -> Settings:
        fields = {
            k[len("FINPULSE_") :].lower(): v
            for k, v in self.env.items()
            if k.startswith("FINPULSE_") and k != "FINPULSE_CONFIG"
        }
        return load_settings(**fields)

    def finpulse(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "finpulse", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"finpulse {' '.join(args)} exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc

    def up(self) -> subprocess.CompletedProcess[str]:
        return self.finpulse("up", "--detach")

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.finpulse("down", check=False)
