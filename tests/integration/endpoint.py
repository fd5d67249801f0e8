"""A real local ClickHouse endpoint (``python -m finpulse.stack.clickhouse.server``) as a test process: shared by the
warehouse tests and the attack suite (their conftests choose the settings)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from finpulse.settings import Settings
from finpulse.stack.clickhouse.launch import start_local_endpoint
from warehouse.client import wait_until_ready


@dataclass
class Endpoint:
    settings: Settings
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.clickhouse_port}"

    @property
    def admin(self) -> tuple[str, str]:
        return (self.settings.clickhouse_user, self.settings.clickhouse_password)

    @property
    def analyst(self) -> tuple[str, str]:
        return (self.settings.clickhouse_analyst_user, self.settings.clickhouse_analyst_password)

    @property
    def user_files(self) -> Path:
        return self.settings.data_dir / "clickhouse" / "user_files"

    def stop(self, timeout: float = 60) -> int:
        self.process.terminate()
        return self.process.wait(timeout=timeout)


def launch(settings: Settings) -> Endpoint:
    """Start the endpoint with these settings (log in the data dir) and wait until it answers."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = settings.data_dir / f"endpoint-{settings.clickhouse_port}.log"
    with log.open("ab") as out:
        process = start_local_endpoint(settings, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(settings, timeout=60)
    except Exception:
        process.kill()
        raise RuntimeError(f"endpoint did not start:\n{log.read_text()}") from None
    if process.poll() is not None:  # another process answered on that port
        raise RuntimeError(f"endpoint exited with {process.returncode}:\n{log.read_text()}")
    return Endpoint(settings, process, log)
