"""Query parameters bound to ``{name:Identifier}`` placeholders become names in the engine: the guard checks them.

Measured on chdb 4.4: ``SELECT * FROM {t:Identifier}`` with ``t=alert_targets`` read the webhook secrets as the
analyst, and with ``t=/etc/passwd`` read that file as the admin (clickhouse-local reads an unknown name as a file).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from finpulse.stack.clickhouse.errors import ClickHouseError
from finpulse.stack.clickhouse.statement_guard import Policy, check

ADMIN = Policy("default", read_only=False, file_access=True, lock_limits=False, user_files=Path("/data/user_files"))
ANALYST = Policy(
    "analyst", read_only=True, file_access=False, lock_limits=True, hidden_tables=frozenset({"alert_targets"})
)


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT * FROM {t:Identifier}", {"t": "alert_targets"}),
        ("SELECT * FROM { t : identifier }", {"t": "alert_targets"}),
        ("SELECT * FROM {d:Identifier}.{t:Identifier}", {"d": "default", "t": "alert_targets"}),
        ("SELECT * FROM {t:Identifier}", {"t": "default.alert_targets"}),
        ("SELECT * FROM {t:Identifier}", {"t": "/etc/passwd"}),
        ("SELECT * FROM {t:Identifier}", {"t": "inside.csv"}),
    ],
)
def test_the_analyst_cannot_name_a_hidden_table_or_a_file_through_a_parameter(sql: str, params: dict) -> None:
    with pytest.raises(ClickHouseError) as refused:
        check(sql, ANALYST, params)
    assert refused.value.name == "READONLY"


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../outside.csv", "/data/other/x.csv", "a\\x2e./b", "~/x", "/data/user_files/../x"]
)
def test_the_admin_reads_files_through_a_parameter_only_inside_user_files(path: str) -> None:
    with pytest.raises(ClickHouseError) as refused:
        check("SELECT * FROM {t:Identifier}", ADMIN, {"t": path})
    assert refused.value.name == "ACCESS_DENIED"


def test_plain_names_and_other_parameter_types_pass() -> None:
    check("SELECT * FROM {d:Identifier}.{t:Identifier}", ANALYST, {"d": "finpulse", "t": "documents"})
    check("SELECT {x:String} FROM numbers(1)", ANALYST, {"x": "alert_targets"})  # a value, not a name
    check("SELECT {x:Array(String)}", ANALYST, {"x": "['/etc/passwd']"})
    check("SELECT * FROM {t:Identifier}", ADMIN, {"t": "inside.csv"})  # in user_files, like FROM 'inside.csv'
    check("SELECT * FROM {t:Identifier}", ADMIN, {"t": "/data/user_files/a.csv"})
    check("SELECT * FROM {t:Identifier}", ANALYST)  # unbound: the engine reports the missing parameter
    check("SELECT * FROM {t:Identifier}", ANALYST, {"other": "alert_targets"})
