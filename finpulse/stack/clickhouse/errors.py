"""ClickHouse-style errors: the exception the server raises, its wire text and its HTTP status.

Real ClickHouse answers an error with a body ``Code: N. DB::Exception: ... (NAME)``, the header
``X-ClickHouse-Exception-Code`` and an HTTP status picked by error name (Server/HTTP/exceptionCodeToHTTPStatus.cpp);
clients such as clickhouse-connect rebuild ``DatabaseError`` from exactly these, so we copy them.
"""

from __future__ import annotations

import re

# Codes the server raises itself (the engine's own errors carry their code in the message).
AUTHENTICATION_FAILED = 516
UNKNOWN_SETTING = 115
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
UNKNOWN_FORMAT = 73
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
CANNOT_DECOMPRESS = 271
SYNTAX_ERROR = 62
TIMEOUT_EXCEEDED = 159
ABORTED = 236
HTTP_LENGTH_REQUIRED = 381
UNKNOWN_USER = 192
READONLY = 164
ACCESS_DENIED = 497
QUERY_IS_TOO_LARGE = 393
TOO_MANY_SIMULTANEOUS_QUERIES = 202
CHECKSUM_DOESNT_MATCH = 40
UNKNOWN_COMPRESSION_METHOD = 89

_NAMES = {
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    UNKNOWN_SETTING: "UNKNOWN_SETTING",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    UNKNOWN_FORMAT: "UNKNOWN_FORMAT",
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SYNTAX_ERROR: "SYNTAX_ERROR",
    TIMEOUT_EXCEEDED: "TIMEOUT_EXCEEDED",
    ABORTED: "ABORTED",
    HTTP_LENGTH_REQUIRED: "HTTP_LENGTH_REQUIRED",
    UNKNOWN_USER: "UNKNOWN_USER",
    READONLY: "READONLY",
    ACCESS_DENIED: "ACCESS_DENIED",
    QUERY_IS_TOO_LARGE: "QUERY_IS_TOO_LARGE",
    TOO_MANY_SIMULTANEOUS_QUERIES: "TOO_MANY_SIMULTANEOUS_QUERIES",
    CHECKSUM_DOESNT_MATCH: "CHECKSUM_DOESNT_MATCH",
    UNKNOWN_COMPRESSION_METHOD: "UNKNOWN_COMPRESSION_METHOD",
}

# Status by error name, as ClickHouse's exceptionCodeToHTTPStatus maps them; anything else is 500.
_STATUS_BY_NAME: dict[str, int] = {"REQUIRED_PASSWORD": 401}
_STATUS_BY_NAME.update(
    dict.fromkeys(
        (
            "UNKNOWN_USER",
            "WRONG_PASSWORD",
            "AUTHENTICATION_FAILED",
            "SET_NON_GRANTED_ROLE",
            "ACCESS_DENIED",
            "READONLY",
        ),
        403,
    )
)
_STATUS_BY_NAME.update(
    dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "CHECKSUM_DOESNT_MATCH",
            "CANNOT_DECOMPRESS",
            "UNKNOWN_COMPRESSION_METHOD",
            "TOO_MANY_ROWS",
            "TOO_MANY_ROWS_OR_BYTES",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    )
)
_STATUS_BY_NAME.update(
    dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
            "SESSION_NOT_FOUND",
        ),
        404,
    )
)
_STATUS_BY_NAME.update(
    {
        "QUERY_IS_TOO_LARGE": 413,
        "NOT_IMPLEMENTED": 501,
        "SOCKET_TIMEOUT": 503,
        "CANNOT_OPEN_FILE": 503,
        "HTTP_LENGTH_REQUIRED": 411,
        "TIMEOUT_EXCEEDED": 408,
        "CANNOT_SCHEDULE_TASK": 503,
        "TOO_MANY_SIMULTANEOUS_QUERIES": 503,
    }
)

_CODE_RE = re.compile(r"Code:\s*(\d+)")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*(?:\(version [^)]*\))?\s*$")


class ClickHouseError(Exception):
    """An error with ClickHouse's code, name and message (without the ``Code: N. DB::Exception:`` prefix)."""

    def __init__(self, code: int, message: str, name: str | None = None) -> None:
        self.code = code
        self.name = name or _NAMES.get(code, "UNKNOWN_EXCEPTION")
        self.message = message
        super().__init__(self.text)

    @property
    def text(self) -> str:
        """The body line real ClickHouse sends."""
        return f"Code: {self.code}. DB::Exception: {self.message}. ({self.name})"

    @property
    def http_status(self) -> int:
        return http_status(self.name)

    @classmethod
    def from_engine(cls, exc: BaseException) -> ClickHouseError:
        """Rebuild the engine's error from chdb's exception text, keeping its code and name."""
        return parse_engine_message(str(exc))


def http_status(name: str) -> int:
    return _STATUS_BY_NAME.get(name, 500)


def parse_engine_message(raw: str) -> ClickHouseError:
    """chdb raises ``RuntimeError``/``ChdbError`` whose text holds ``Code: N. DB::Exception: msg. (NAME)``,
    sometimes behind a wrapper prefix ('Streaming insert finish failed: ...'); strip the wrapping."""
    text = raw.strip()
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    code_match = _CODE_RE.match(text)
    if not code_match:
        return ClickHouseError(1001, text or "unknown engine error", "STD_EXCEPTION")
    code = int(code_match.group(1))
    name_match = _NAME_RE.search(text)
    name = name_match.group(1) if name_match else _NAMES.get(code, "UNKNOWN_EXCEPTION")
    message = text[code_match.end() :].lstrip(". ")
    message = message.removeprefix("DB::Exception: ")
    if name_match:
        message = message[: len(message) - len(text) + name_match.start()].rstrip()
    message = message.removesuffix(".")
    # A nested engine error repeats its prefix ('Code: 164. DB::Exception: Code: 164. DB::Exception: ...'): keep one.
    while message.startswith(f"Code: {code}. DB::Exception: "):
        message = message[len(f"Code: {code}. DB::Exception: ") :]
    message = re.sub(r"\s*\(" + re.escape(name) + r"\)\s*\(version [^)]*\)\s*$", "", message).removesuffix(".")
    return ClickHouseError(code, message, name)
