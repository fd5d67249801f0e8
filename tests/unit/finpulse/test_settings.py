from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from finpulse.settings import ConfigFileError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("FINPULSE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_local() -> None:
    s = load_settings(data_dir="/tmp/x")
    assert s.kafka_is_local and s.clickhouse_is_local
    assert s.kafka_servers == "127.0.0.1:9092"
    assert s.registry_dir == Path("/tmp/x/models")
    assert s.topic_partitions()["finpulse.raw"] == 6


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("FINPULSE_PARTITIONS_RAW", "24")
    s = load_settings()
    assert not s.kafka_is_local
    assert s.kafka_servers == "k1:9092,k2:9092"
    assert s.partitions_raw == 24


def test_toml_file_with_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "finpulse.toml").write_text('log_level = "DEBUG"\n[kafka]\nport = 29092\n[clickhouse]\nport = 28123\n')
    s = load_settings()
    assert (s.log_level, s.kafka_port, s.clickhouse_port) == ("DEBUG", 29092, 28123)
    monkeypatch.setenv("FINPULSE_KAFKA_PORT", "39092")  # env beats the file
    assert load_settings().kafka_port == 39092


def test_bad_toml_and_unknown_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("kafka_port = = 1")
    monkeypatch.setenv("FINPULSE_CONFIG", str(bad))
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        load_settings()
    bad.write_text("kafak_port = 1\n")
    with pytest.raises(ConfigFileError, match=r"unknown setting.*kafak_port"):
        load_settings()
    monkeypatch.setenv("FINPULSE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigFileError, match="does not exist"):
        load_settings()


def test_invalid_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINPULSE_KAFKA_PORT", "99999")
    with pytest.raises(ValidationError, match="kafka_port"):
        load_settings()


def test_local_ports_must_differ() -> None:
    with pytest.raises(ValidationError, match="ports must differ"):
        load_settings(kafka_port=9000, clickhouse_port=9000)


def test_settings_are_frozen_and_reach_children() -> None:
    s = load_settings(data_dir="/tmp/y", kafka_port=19092)
    with pytest.raises(ValidationError):
        s.kafka_port = 1  # type: ignore[misc]
    env = s.child_env()
    assert env["FINPULSE_KAFKA_PORT"] == "19092"
    assert env["FINPULSE_DATA_DIR"] == "/tmp/y"
    rebuilt = load_settings(**{k[len("FINPULSE_") :].lower(): v for k, v in env.items()})
    assert rebuilt == s
