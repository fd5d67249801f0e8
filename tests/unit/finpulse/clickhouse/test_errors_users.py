import pytest

from finpulse.settings import load_settings
from finpulse.stack.clickhouse.chdb_session import strictest_readonly
from finpulse.stack.clickhouse.errors import ClickHouseError, http_status, parse_engine_message
from finpulse.stack.clickhouse.http_protocol import Credentials
from finpulse.stack.clickhouse.users import PasswordlessUserError, User, Users


def test_engine_message_keeps_code_name_and_text() -> None:
    err = parse_engine_message("Code: 60. DB::Exception: Unknown table expression identifier 'nope'. (UNKNOWN_TABLE)")
    assert (err.code, err.name, err.http_status) == (60, "UNKNOWN_TABLE", 404)
    assert err.text == "Code: 60. DB::Exception: Unknown table expression identifier 'nope'. (UNKNOWN_TABLE)"


def test_wrapped_and_nested_engine_messages_are_unwrapped() -> None:
    err = parse_engine_message(
        "Streaming insert finish failed: Code: 164. DB::Exception: Code: 164. DB::Exception: "
        "Cannot modify 'x' setting in readonly mode. (READONLY) (version 26.9.2.1). (READONLY)"
    )
    assert err.code == 164 and err.name == "READONLY"
    assert err.text == "Code: 164. DB::Exception: Cannot modify 'x' setting in readonly mode. (READONLY)"


def test_unparseable_engine_message_is_still_an_error() -> None:
    assert parse_engine_message("boom").code == 1001


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("SYNTAX_ERROR", 400),
        ("UNKNOWN_TABLE", 404),
        ("AUTHENTICATION_FAILED", 403),
        ("READONLY", 403),
        ("ACCESS_DENIED", 403),
        ("TOO_MANY_SIMULTANEOUS_QUERIES", 503),
        ("X", 500),
    ],
)
def test_http_status_like_clickhouse(name: str, status: int) -> None:
    assert http_status(name) == status


def test_users_from_settings() -> None:
    users = Users.from_settings(load_settings(clickhouse_password="s3cret", clickhouse_analyst_password="ro"))
    assert users.authenticate(Credentials("default", "s3cret", "basic")).readonly == 0
    assert users.authenticate(Credentials("analyst", "ro", "basic")).readonly == 1


@pytest.mark.parametrize(("user", "password"), [("default", "wrong"), ("nobody", ""), ("analyst", "")])
def test_bad_credentials_are_516(user: str, password: str) -> None:
    users = Users.from_settings(load_settings(clickhouse_password="s3cret"))
    with pytest.raises(ClickHouseError) as info:
        users.authenticate(Credentials(user, password, "basic"))
    assert info.value.code == 516 and info.value.name == "AUTHENTICATION_FAILED"


def test_readonly_levels_strictest_wins() -> None:
    assert strictest_readonly(1, 2) == 1  # an analyst's GET stays readonly=1, not 2
    assert strictest_readonly(0, 2) == 2
    assert strictest_readonly(0, 0) == 0


def test_passwords_are_generated_per_install_into_an_owner_only_file(tmp_path) -> None:
    first = load_settings(data_dir=tmp_path)
    assert first.clickhouse_password and first.clickhouse_analyst_password
    assert first.clickhouse_password != first.clickhouse_analyst_password
    secrets = tmp_path / "secrets.json"
    assert secrets.stat().st_mode & 0o777 == 0o600
    again = load_settings(data_dir=tmp_path)  # every process of the install gets the same values
    assert (again.clickhouse_password, again.clickhouse_analyst_password) == (
        first.clickhouse_password,
        first.clickhouse_analyst_password,
    )
    assert load_settings(data_dir=tmp_path, clickhouse_password="mine").clickhouse_password == "mine"
    assert load_settings(data_dir=tmp_path / "other").clickhouse_password != first.clickhouse_password


def test_a_passwordless_user_is_refused() -> None:
    with pytest.raises(PasswordlessUserError, match="empty password"):
        Users([User("default", "", 0)])
    users = Users([User("default", "pw", 0)])
    with pytest.raises(ClickHouseError):
        users.authenticate(Credentials("default", "", "none"))


def test_config_masks_secrets_unless_asked(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from finpulse.cli import app

    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FINPULSE_ALERTS_WEBHOOK_SECRET", "hook-key")
    password = load_settings(data_dir=tmp_path).clickhouse_password
    masked = CliRunner().invoke(app, ["config"]).output
    assert "FINPULSE_CLICKHOUSE_PASSWORD=***" in masked and password not in masked and "hook-key" not in masked
    shown = CliRunner().invoke(app, ["config", "--show-secrets"]).output
    assert f"FINPULSE_CLICKHOUSE_PASSWORD={password}" in shown and "hook-key" in shown
