"""A real ``clickhouse`` server binary, preferred over the embedded engine when one is installed.

Only the launch path lives here: a minimal config (data path, HTTP port on the configured host, no TCP/MySQL/
PostgreSQL ports) and users.xml with the full-access user and the read-only analyst profile.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from xml.sax.saxutils import escape

from finpulse.settings import Settings


def find_binary(settings: Settings) -> str | None:
    """settings.clickhouse_binary when set, else ``clickhouse`` / ``clickhouse-server`` on PATH."""
    if settings.clickhouse_binary:
        return settings.clickhouse_binary
    return shutil.which("clickhouse") or shutil.which("clickhouse-server")


def config_dir(settings: Settings) -> Path:
    return settings.data_dir / "clickhouse-server"


def _user_xml(name: str, password: str, profile: str) -> str:
    digest = hashlib.sha256(password.encode()).hexdigest()
    return (
        f"    <{escape(name)}>\n"
        f"      <password_sha256_hex>{digest}</password_sha256_hex>\n"
        "      <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>\n"
        f"      <profile>{profile}</profile>\n"
        "      <quota>default</quota>\n"
        f"    </{escape(name)}>\n"
    )


def write_config(settings: Settings) -> Path:
    """Write config.xml + users.xml under <data_dir>/clickhouse-server and return the config path."""
    base = config_dir(settings)
    data = settings.data_dir / "clickhouse"
    base.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    users = base / "users.xml"
    users.write_text(
        "<clickhouse>\n"
        "  <profiles>\n"
        "    <default/>\n"
        "    <readonly><readonly>1</readonly></readonly>\n"
        "  </profiles>\n"
        "  <users>\n"
        + _user_xml(settings.clickhouse_user, settings.clickhouse_password, "default")
        + _user_xml(settings.clickhouse_analyst_user, settings.clickhouse_analyst_password, "readonly")
        + "  </users>\n"
        "  <quotas><default/></quotas>\n"
        "</clickhouse>\n",
        encoding="utf-8",
    )
    users.chmod(0o600)
    config = base / "config.xml"
    config.write_text(
        "<clickhouse>\n"
        "  <logger><level>information</level><console>1</console></logger>\n"
        f"  <listen_host>{escape(settings.clickhouse_host)}</listen_host>\n"
        f"  <http_port>{settings.clickhouse_port}</http_port>\n"
        f"  <path>{escape(str(data))}/</path>\n"
        f"  <tmp_path>{escape(str(data))}/tmp/</tmp_path>\n"
        f"  <user_files_path>{escape(str(data))}/user_files/</user_files_path>\n"
        f"  <user_directories><users_xml><path>{escape(str(users))}</path></users_xml></user_directories>\n"
        "  <default_profile>default</default_profile>\n"
        "  <default_database>default</default_database>\n"
        "  <mark_cache_size>268435456</mark_cache_size>\n"
        "</clickhouse>\n",
        encoding="utf-8",
    )
    return config


def binary_command(binary: str, config: Path) -> list[str]:
    # The multi-call `clickhouse` binary takes the `server` sub-command; `clickhouse-server` is the server itself.
    if Path(binary).name == "clickhouse-server":
        return [binary, f"--config-file={config}"]
    return [binary, "server", f"--config-file={config}"]
