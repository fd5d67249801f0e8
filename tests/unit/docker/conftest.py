"""Settings in these tests come only from the compose file: no FINPULSE_* of the caller, no finpulse.toml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("FINPULSE_"):
            monkeypatch.delenv(name)
    empty = tmp_path / "finpulse.toml"
    empty.write_text("", encoding="utf-8")
    monkeypatch.setenv("FINPULSE_CONFIG", str(empty))
