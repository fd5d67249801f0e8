import time
from pathlib import Path

import pytest

from finpulse.stack.clickhouse.errors import ClickHouseError
from finpulse.stack.clickhouse.http_protocol import Kind, classify
from finpulse.stack.clickhouse.statement_guard import Policy, check, tokens

ADMIN = Policy("default", read_only=False, file_access=True, lock_limits=False, user_files=Path("/data/user_files"))
ANALYST = Policy("analyst", read_only=True, file_access=False, lock_limits=True)
GET = Policy("default", read_only=True, file_access=True, lock_limits=False, user_files=Path("/data/user_files"))


def _refused(sql: str, policy: Policy) -> str:
    with pytest.raises(ClickHouseError) as info:
        check(sql, policy)
    return info.value.name


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM finpulse.documents_latest WHERE url = 'file(x)' -- file('/etc/passwd')",
        "SELECT count() FROM `finpulse`.`documents` SETTINGS max_threads = 2",
        "INSERT INTO FUNCTION file('out/x.csv', 'CSV', 'a UInt8') VALUES (1)",
        "SELECT * FROM file('user_files/*.csv', 'CSV')",
        "SELECT * FROM file('/data/user_files/a.csv', 'CSV')",
        "SELECT 1 INTO OUTFILE 'export.tsv'",
        "SELECT domain(url) FROM documents /* url('http://x') */",
    ],
)
def test_admin_may(sql: str) -> None:
    check(sql, ADMIN)


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("SELECT * FROM file('/etc/passwd')", "ACCESS_DENIED"),
        ("SELECT * FROM `file`('/data/user_files/../../etc/passwd')", "ACCESS_DENIED"),
        ("SELECT * FROM file('a\\x2E\\x2E/b')", "ACCESS_DENIED"),
        ("SELECT * FROM file(concat('/etc', '/passwd'))", "ACCESS_DENIED"),
        ("SELECT * FROM file({p:String})", "ACCESS_DENIED"),
        ("SELECT * FROM '/etc/passwd'", "ACCESS_DENIED"),
        ('SELECT * FROM "/etc/passwd"', "ACCESS_DENIED"),
        ("SELECT * FROM s3('https://bucket/x')", "ACCESS_DENIED"),
        ("SELECT * FROM Url ('http://x')", "ACCESS_DENIED"),
        ("CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(HTTP(url 'http://x' format 'TSV'))", "ACCESS_DENIED"),
        ("CREATE TABLE t (a String) ENGINE = File(TSV, '/etc/passwd')", "ACCESS_DENIED"),
        ("BACKUP TABLE t TO Disk('default', 'x')", "ACCESS_DENIED"),
        ("SELECT 1; DROP TABLE t", "SYNTAX_ERROR"),
        ("SELECT 'unterminated", "SYNTAX_ERROR"),
    ],
)
def test_admin_may_not(sql: str, name: str) -> None:
    assert _refused(sql, ADMIN) == name


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 INTO OUTFILE 'x'",
        "SELECT * FROM file('a.csv')",
        "INSERT INTO t VALUES (1)",
        "SELECT 1 SETTINGS max_execution_time = 0",
        "SELECT 1 SETTINGS max_threads = 1, readonly = 0",
        "SELECT 1 SETTINGS result_overflow_mode = 'break'",
    ],
)
def test_analyst_may_not(sql: str) -> None:
    _refused(sql, ANALYST)


def test_analyst_may_read_and_tune_harmless_settings() -> None:
    check("WITH 1 AS x SELECT x FROM numbers(3) SETTINGS output_format_json_quote_64bit_integers = 0", ANALYST)
    check("SHOW TABLES", ANALYST)


def test_get_only_reads_even_as_admin() -> None:
    assert _refused("CREATE TABLE t (a UInt8) ENGINE = Memory", GET) == "READONLY"
    assert _refused("INSERT INTO FUNCTION file('x.csv') VALUES (1)", GET) == "READONLY"
    assert _refused("SELECT 1 INTO OUTFILE 'x'", GET) == "READONLY"
    check("SELECT * FROM file('x.csv', 'CSV')", GET)


def test_scanning_is_linear() -> None:
    t0 = time.perf_counter()
    assert next(iter(tokens(" " * 2_000_000 + "SELECT 1"))).text == "SELECT"
    check("SELECT '" + "''" * 500_000 + "'", ADMIN)
    check("SELECT 1 " + "/* x */ " * 200_000, ADMIN)
    assert time.perf_counter() - t0 < 5


def test_head_classification_needs_no_rescans() -> None:
    # classify() on the whole text once is linear; the endpoint calls it O(log n) times per body (doubling).
    t0 = time.perf_counter()
    assert classify(b"INSERT " + b" " * 2_000_000, complete=False).kind is Kind.NEED_MORE
    assert time.perf_counter() - t0 < 5


def test_hidden_tables_are_not_named_by_the_analyst() -> None:
    analyst = Policy("analyst", True, False, True, hidden_tables=frozenset({"alert_targets", "query_log"}))
    for sql in (
        "SELECT secret FROM finpulse.alert_targets",
        "SELECT * FROM `alert_targets`",
        'SELECT * FROM "alert_targets"',
        "SELECT query FROM system.query_log",
        "SELECT * FROM `\\x61lert_targets`",
        "SELECT * FROM merge('finpulse', '^alert_t')",
        "SELECT * FROM numbers(1) AS n JOIN loop(finpulse, alerts) AS l ON 1",
        "SELECT joinGet('alert_targets', 'secret', 1)",
        "SELECT * FROM numbers(1), merge('finpulse', '^alert_t')",
        "SELECT dictGet('targets_dict', 'secret', 1)",
    ):
        with pytest.raises(ClickHouseError):
            check(sql, analyst)
    check("SELECT count() FROM finpulse.alerts WHERE rule = 'alert_targets'", analyst)
    check("SELECT sum(number) FROM numbers(10)", analyst)
