import re
from pathlib import Path

import pytest

from finpulse.settings import load_settings
from finpulse.stack.clickhouse.launch import clickhouse_command, clickhouse_ping, free_port
from warehouse import migrate
from warehouse.client import client_kwargs, parse_clickhouse_url


def test_parse_url() -> None:
    t = parse_clickhouse_url("https://u%40x:p%3Aw@ch.example:9443/fin")
    assert (t.host, t.port, t.secure, t.user, t.password, t.database) == ("ch.example", 9443, True, "u@x", "p:w", "fin")
    assert parse_clickhouse_url("http://h").port == 8123
    assert parse_clickhouse_url("https://h?database=d").database == "d"
    with pytest.raises(ValueError, match="scheme"):
        parse_clickhouse_url("ftp://h")


def test_client_kwargs_local_external_and_readonly() -> None:
    local = client_kwargs(load_settings(clickhouse_port=9999, clickhouse_password="pw"))
    assert (local["host"], local["port"], local["username"], local["password"]) == ("127.0.0.1", 9999, "default", "pw")
    assert local["database"] == "finpulse"
    external = client_kwargs(
        load_settings(clickhouse_url="https://a:b@h:8443/x", clickhouse_analyst_password="ro"), readonly=True
    )
    assert (external["username"], external["password"], external["database"], external["secure"]) == (
        "analyst",
        "ro",
        "x",
        True,
    )
    assert "database" not in client_kwargs(load_settings(), database=None)


def test_command_without_binary_is_embedded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no clickhouse on PATH
    argv = clickhouse_command(load_settings(data_dir=tmp_path))
    assert argv[1:] == ["-m", "finpulse.stack.clickhouse.server"]


def test_command_with_binary_writes_config(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, clickhouse_binary="/opt/ch/clickhouse", clickhouse_port=18124)
    argv = clickhouse_command(settings)
    assert argv[:2] == ["/opt/ch/clickhouse", "server"]
    config = Path(argv[2].split("=", 1)[1])
    text = config.read_text()
    assert "<http_port>18124</http_port>" in text and f"<path>{tmp_path / 'clickhouse'}/</path>" in text
    users = (config.parent / "users.xml").read_text()
    assert "<readonly><readonly>1</readonly></readonly>" in users
    assert "<analyst>" in users and "<profile>readonly</profile>" in users


def test_ping_false_when_nothing_listens() -> None:
    assert clickhouse_ping(load_settings(clickhouse_port=free_port()), timeout=0.5) is False


def test_migrations_are_ordered_and_substituted() -> None:
    found = migrate.discover()
    assert [m.id for m in found] == sorted(m.id for m in found)
    assert found[0].id == "0001_documents"
    values = migrate.variables(load_settings(clickhouse_database="fp", documents_ttl_days=7))
    statements = found[0].statements(values)
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS `fp`.documents")
    assert "INTERVAL 7 DAY" in statements[0]
    assert all("${" not in s and not s.endswith(";") for m in found for s in m.statements(values))


def test_every_table_with_a_ttl_gets_its_retention_setting_reapplied() -> None:
    # A table created with a TTL but missing from TTLS keeps its first retention when the setting changes.
    with_ttl: dict[str, str] = {}
    for found in migrate.discover():
        for statement in found.path.read_text(encoding="utf-8").split(";\n"):
            created = re.search(r"CREATE TABLE IF NOT EXISTS \$\{database\}\.(\w+)", statement)
            ttl = re.search(r"^TTL (.+?);?$", statement.strip(), re.MULTILINE)
            if created and ttl:
                with_ttl[created.group(1)] = ttl.group(1).strip()
    assert {"documents", "document_entities", "alert_outbox"} <= set(with_ttl)
    assert set(with_ttl) <= set(migrate.TTLS), sorted(set(with_ttl) - set(migrate.TTLS))
    for table, created_with in with_ttl.items():
        expression, setting = migrate.TTLS[table]
        assert expression.format(days="${" + setting + "}") == created_with, table
