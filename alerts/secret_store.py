"""Alert secrets kept out of ClickHouse: webhook signing secrets and Slack URLs (whose path is the credential)
live in ``<data_dir>/alert_secrets.json`` (0600, owner only); the ``alert_targets`` table keeps only a reference
(``ref:<name>``), so a user who can SELECT the table (the analyst) learns nothing usable.

The default signing secret is generated per install into ``<data_dir>/secrets.json`` when
FINPULSE_ALERTS_WEBHOOK_SECRET is unset: webhooks are always signed.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from finpulse.settings import Settings

FILE = "alert_secrets.json"
REF = "ref:"
DEFAULT_SECRET_NAME = "alerts_webhook_secret"


def default_signing_secret(settings: Settings) -> str:
    if settings.alerts_webhook_secret:
        return settings.alerts_webhook_secret
    from finpulse.secrets import install_secrets

    return install_secrets(settings.data_dir, [DEFAULT_SECRET_NAME])[DEFAULT_SECRET_NAME]


def _path(data_dir: Path) -> Path:
    return data_dir / FILE


def _locked(data_dir: Path) -> int:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(data_dir / (FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _read(data_dir: Path) -> dict[str, str]:
    try:
        data = json.loads(_path(data_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{_path(data_dir)} must be a JSON object; fix it or move it aside")
    return {str(k): str(v) for k, v in data.items()}


def put(data_dir: Path, name: str, value: str) -> str:
    """Store a secret; returns the reference to keep in ClickHouse instead of it."""
    fd = _locked(data_dir)
    try:
        data = _read(data_dir)
        data[name] = value
        tmp = _path(data_dir).with_name(FILE + ".tmp")
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(out, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, _path(data_dir))
    finally:
        os.close(fd)
    return REF + name


def resolve(data_dir: Path, stored: str) -> str:
    """A value as the table holds it: a reference is looked up; a legacy plain value is returned as it is."""
    if not stored.startswith(REF):
        return stored
    return _read(data_dir).get(stored[len(REF) :], "")
