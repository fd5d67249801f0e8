"""What a statement may do on the local endpoint, checked before the engine sees it.

The embedded engine (chdb) is clickhouse-local inside a server: it has no access control of its own. Measured on
chdb 4.4 / ClickHouse 26.9: ``readonly=2`` still runs ``INSERT INTO FUNCTION file(...)``; ``readonly=1`` still
writes ``INTO OUTFILE`` and accepts ``SETTINGS max_execution_time=0`` in the query; ``SELECT 1; CREATE ...`` runs
both statements; and ``FROM '/etc/passwd'`` (or a quoted identifier holding a path) reads a file. So the checks a
real server does with grants, ``user_files_path`` and settings constraints are done here, on the tokens of the
statement, in one linear pass (no regex backtracking, no rescans).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from finpulse.stack.clickhouse.errors import ACCESS_DENIED, READONLY, SYNTAX_ERROR, ClickHouseError

# Table functions, engines and dictionary sources that reach the network or run processes: refused for everyone
# (the local stack needs none of them; a real ClickHouse server is the place for them).
REMOTE_FUNCTIONS = frozenset(
    {
        "url", "urlcluster", "remote", "remotesecure", "cluster", "clusterallreplicas", "s3", "s3cluster", "gcs",
        "cosn", "oss", "azureblobstorage", "azureblobstoragecluster", "hdfs", "hdfscluster", "executable",
        "executablepool", "executable_pool", "mysql", "postgresql", "jdbc", "odbc", "sqlite", "mongodb", "redis",
        "input", "iceberg", "icebergs3", "icebergazure", "icebergfile", "icebergs3cluster", "icebergazurecluster",
        "deltalake", "deltalakecluster", "deltalakelocal", "hudi", "hudicluster", "hive", "s3queue", "azurequeue",
        "kafka", "rabbitmq", "nats", "meilisearch", "http", "clickhouse", "cassandra", "ytsaurus", "arrowflight",
        "paimon", "filelog", "embeddedrocksdb", "mergetreeproject",
    }
)  # fmt: skip
# Reach the file system: confined to the user-files directory for the admin, refused for the analyst.
FILE_FUNCTIONS = frozenset({"file", "filecluster"})
# Table functions a user with hidden tables may use: they generate rows and read no table (merge(), loop(),
# dictionary(), mergeTreeIndex() ... would read one by a name in a string, which readonly=1 does not stop).
SAFE_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "generaterandom", "values", "null", "view", "format",
     "generate_series", "generateseries"}
)  # fmt: skip
TABLE_BY_NAME_FUNCTIONS = frozenset(
    {"joinget", "joingetornull", "merge", "loop", "dictionary", "mergetreeindex", "mergetreeanalyzeindexes",
     "mergetreeparts", "mergetreeprojection", "viewifpermitted", "viewexplain", "timeseriesdata", "timeseriestags",
     "timeseriesmetrics", "timeseriesselector", "prometheusquery", "prometheusqueryrange"}
)  # fmt: skip
# Statements that write outside the database whatever their arguments.
REFUSED_STATEMENTS = frozenset({"BACKUP", "RESTORE"})
READ_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "SET", "USE", "("})
# Limits the analyst may not lift, in a SETTINGS clause or otherwise (a real server uses settings constraints).
LOCKED_SETTING = re.compile(
    r"^(readonly|allow_ddl|max_.*|.*_overflow_mode|timeout_.*|.*execution_time.*|min_execution_speed.*"
    r"|priority|queue_max_wait_ms|allow_introspection_functions|.*_external_.*)$",
    re.IGNORECASE,
)

_WS = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_.]*(?:[eEpP][+-][0-9]+)?")
_HEREDOC = re.compile(r"\$([A-Za-z0-9_]*)\$")
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_.,\-/*?{}=+@ ]+$")


@dataclass(frozen=True)
class Token:
    kind: str  # 'word', 'quoted' (a `name` or "name"), 'string' ('...' or $$...$$), 'number', 'punct'
    text: str  # for word/punct as written; for quoted/string the decoded content
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def _match_end(pattern: re.Pattern[str], sql: str, pos: int) -> int:
    """Where ``pattern`` ends when matched at ``pos``; the caller has seen the character it starts with."""
    match = pattern.match(sql, pos)
    if match is None:  # pragma: no cover - unreachable: both patterns match one such character
        raise AssertionError(f"{pattern.pattern!r} does not match at position {pos}")
    return match.end()


def tokens(sql: str) -> Iterator[Token]:
    """The statement's tokens, comments and whitespace dropped. Each character is looked at a bounded number of
    times (quoted text and comments are skipped with ``str.find``), so time is linear in the length."""
    n = len(sql)
    pos = 0
    while pos < n:
        ch = sql[pos]
        if ch.isspace():
            pos = _match_end(_WS, sql, pos)
        elif sql.startswith("--", pos) or ch == "#":
            end = sql.find("\n", pos)
            pos = n if end < 0 else end + 1
        elif sql.startswith("/*", pos):
            end = sql.find("*/", pos + 2)
            if end < 0:
                raise ClickHouseError(SYNTAX_ERROR, f"Syntax error: unterminated comment at position {pos + 1}")
            pos = end + 2
        elif ch in "'\"`":
            text, end = _quoted(sql, pos)
            yield Token("string" if ch == "'" else "quoted", text, pos)
            pos = end
        elif ch == "$" and (heredoc := _HEREDOC.match(sql, pos)):
            tag = heredoc.group()
            end = sql.find(tag, heredoc.end())
            if end < 0:
                raise ClickHouseError(SYNTAX_ERROR, f"Syntax error: unterminated heredoc at position {pos + 1}")
            yield Token("string", sql[heredoc.end() : end], pos)
            pos = end + len(tag)
        elif word := _WORD.match(sql, pos):
            yield Token("word", word.group(), pos)
            pos = word.end()
        elif ch.isdigit():
            end = _match_end(_NUMBER, sql, pos)
            yield Token("number", sql[pos:end], pos)
            pos = end
        else:
            yield Token("punct", ch, pos)
            pos += 1


def _quoted(sql: str, start: int) -> tuple[str, int]:
    """Content and end of the quoted token at ``start``; backslash escapes and doubled quotes as in ClickHouse.
    Escapes are kept as written except for the quote itself: a path check refuses any backslash anyway."""
    quote = sql[start]
    parts: list[str] = []
    pos = start + 1
    while True:
        q = sql.find(quote, pos)
        b = sql.find("\\", pos, q if q >= 0 else len(sql))
        if b >= 0:
            parts.append(sql[pos : b + 2])
            pos = b + 2
            continue
        if q < 0:
            raise ClickHouseError(SYNTAX_ERROR, f"Syntax error: unterminated quoted text at position {start + 1}")
        parts.append(sql[pos:q])
        if sql.startswith(quote, q + 1):  # doubled quote
            parts.append(quote)
            pos = q + 2
            continue
        return "".join(parts), q + 1


@dataclass(frozen=True)
class Policy:
    """``read_only``: only statements that read (GET requests, whatever their session, and the analyst).
    ``file_access``: file() and INTO OUTFILE allowed, confined to ``user_files`` (the admin); else refused.
    ``lock_limits``: SETTINGS clauses may not change limits (the analyst).
    ``hidden_tables``: tables this user may not name at all; with readonly=1 the engine refuses every table function
    (merge(), loop(), ...), so naming a table is the only way to read it."""

    user: str
    read_only: bool
    file_access: bool
    lock_limits: bool
    user_files: Path | None = None
    hidden_tables: frozenset[str] = frozenset()  # never named in a statement of this user (secrets, query texts)


def check(sql: str, policy: Policy, params: Mapping[str, str] | None = None) -> None:
    """Raise ClickHouseError (READONLY / ACCESS_DENIED / SYNTAX_ERROR) when ``policy`` forbids the statement.

    ``params``: the request's query parameters (URL ``param_*`` or form fields). A value bound to an
    ``{name:Identifier}`` placeholder becomes a table or column name in the engine, so it is checked as one."""
    toks = list(tokens(sql))
    if not toks:
        return
    for i, tok in enumerate(toks):
        if tok.kind == "punct" and tok.text == ";" and i + 1 < len(toks):
            raise ClickHouseError(SYNTAX_ERROR, "Multi-statements are not allowed")
    head = toks[0].upper or toks[0].text
    if head in REFUSED_STATEMENTS:
        _deny(policy, f"{head} is disabled on the local endpoint (it writes outside the database)")
    if policy.read_only and head not in READ_STATEMENTS:
        raise ClickHouseError(READONLY, f"{policy.user}: Cannot execute query in readonly mode")
    in_settings = False
    for i, tok in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        word = tok.upper
        named = tok.kind in ("word", "quoted") and (tok.text in policy.hidden_tables or "\\" in tok.text)
        if policy.hidden_tables and named:
            _deny(policy, f"{tok.text} is not readable by user {policy.user} (it holds secrets or query texts)")
        if params and tok.kind == "punct" and tok.text == "{":
            _check_identifier_param(toks, i, params, policy)
        if word == "SETTINGS":
            in_settings = True
        if tok.kind in ("word", "quoted") and nxt is not None and nxt.text == "(" and nxt.kind == "punct":
            name = tok.text.lower()
            after_from = i > 0 and toks[i - 1].upper in ("FROM", "JOIN")
            if policy.hidden_tables and (
                (after_from and name not in SAFE_TABLE_FUNCTIONS)
                or name in TABLE_BY_NAME_FUNCTIONS
                or name.startswith("dict")
            ):
                _deny(policy, f"table function {tok.text}() is not allowed for user {policy.user}")
            if name in REMOTE_FUNCTIONS:
                _deny(policy, f"{tok.text}() reaches the network or runs processes; disabled on the local endpoint")
            if name in FILE_FUNCTIONS:
                engine_form = i >= 2 and toks[i - 1].text == "=" and toks[i - 2].upper == "ENGINE"
                _check_file_call(toks, i + 1, engine_form, policy, tok.text)
        if word == "INTO" and nxt is not None and nxt.upper == "OUTFILE":
            if policy.read_only or not policy.file_access:
                _deny(policy, "INTO OUTFILE writes files and is not allowed for this user", readonly=policy.read_only)
            _check_path(toks[i + 2] if i + 2 < len(toks) else None, policy, "INTO OUTFILE")
        if word in ("FROM", "JOIN") and nxt is not None:
            if nxt.upper == "INFILE":
                _check_path(toks[i + 2] if i + 2 < len(toks) else None, policy, "FROM INFILE")
            elif nxt.kind == "string" or (nxt.kind == "quoted" and _looks_like_path(nxt.text, toks, i + 1)):
                # clickhouse-local reads FROM 'file' / FROM "dir/file.csv" as a file
                _check_path(nxt, policy, f"{word} <file>")
        locked = in_settings and policy.lock_limits and tok.kind == "word" and LOCKED_SETTING.match(tok.text)
        if locked and nxt is not None and nxt.text == "=":
            _deny(policy, f"Setting {tok.text} is a limit of user {policy.user} and cannot be changed")


def _check_identifier_param(toks: list[Token], brace: int, params: Mapping[str, str], policy: Policy) -> None:
    """``{name:Identifier}``: the engine takes the bound value literally as one name, and clickhouse-local reads a
    name that is no table as a file (``FROM {t:Identifier}`` with ``/etc/passwd`` read it, measured on chdb 4.4).
    So a value that is not a plain name is checked as a path, and a plain name as a table name."""
    shape = toks[brace + 1 : brace + 5]
    if len(shape) < 4 or shape[0].kind != "word" or shape[1].text != ":" or shape[3].text != "}":
        return
    if shape[2].upper != "IDENTIFIER":
        return
    value = params.get(shape[0].text)
    if value is None:
        return
    if not _PLAIN_NAME.match(value):
        _check_path(Token("string", value, shape[0].pos), policy, f"parameter {shape[0].text} (an Identifier)")
    if value in policy.hidden_tables:
        _deny(policy, f"{value} (parameter {shape[0].text}) is not readable by user {policy.user}")


def _looks_like_path(text: str, toks: list[Token], index: int) -> bool:
    followed_by_dot = index + 1 < len(toks) and toks[index + 1].text == "."
    preceded_by_dot = toks[index - 1].text == "." if index > 0 else False
    return not followed_by_dot and not preceded_by_dot and any(c in text for c in "/.*?{~")


def _check_file_call(toks: list[Token], paren: int, engine_form: bool, policy: Policy, name: str) -> None:
    if not policy.file_access:
        _deny(policy, f"{name}() reads or writes files and is not allowed for user {policy.user}")
    args = _top_level_args(toks, paren)
    if engine_form:  # ENGINE = File(Format[, 'path']): the table's own directory unless a path is given
        if len(args) > 1:
            _check_path(args[1][0] if len(args[1]) == 1 else None, policy, "File engine")
        return
    first = args[0] if args else []
    _check_path(first[0] if len(first) == 1 else None, policy, f"{name}()")


def _top_level_args(toks: list[Token], paren: int) -> list[list[Token]]:
    args: list[list[Token]] = [[]]
    depth = 0
    for tok in toks[paren:]:
        if tok.kind == "punct" and tok.text in "([":
            depth += 1
            if depth == 1:
                continue
        elif tok.kind == "punct" and tok.text in ")]":
            depth -= 1
            if depth == 0:
                break
        if depth == 1 and tok.kind == "punct" and tok.text == ",":
            args.append([])
            continue
        args[-1].append(tok)
    return [arg for arg in args if arg]


def _check_path(tok: Token | None, policy: Policy, what: str) -> None:
    """A path must be a plain literal inside the user-files directory (relative to it, or absolute under it)."""
    if not policy.file_access or policy.user_files is None:
        _deny(policy, f"{what} reads or writes files and is not allowed for user {policy.user}")
    where = f"the user-files directory {policy.user_files}"
    if tok is None or tok.kind not in ("string", "quoted"):
        _deny(policy, f"{what}: the path must be a string literal (relative to {where})")
    path = tok.text
    if not path or "\\" in path or not _SAFE_PATH.match(path) or ".." in path or path.startswith("~"):
        _deny(policy, f"{what}: path {path!r} is not allowed: use a plain relative path inside {where}")
    if path.startswith("/"):
        root = os.path.realpath(policy.user_files)
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            _deny(policy, f"{what}: path {path!r} is outside {where}")


def _deny(policy: Policy, message: str, *, readonly: bool = False) -> NoReturn:
    # A read-only user or request gets ClickHouse's READONLY error, as a real server answers readonly=1 users
    # (clients such as the SQL explorer recognise it); the admin gets ACCESS_DENIED.
    if readonly or policy.read_only:
        raise ClickHouseError(READONLY, f"{policy.user}: Cannot execute query in readonly mode: {message}")
    raise ClickHouseError(ACCESS_DENIED, f"{policy.user}: Not enough privileges: {message}")
