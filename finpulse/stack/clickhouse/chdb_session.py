"""The embedded ClickHouse engine (chdb) behind the local endpoint: one engine, many request contexts.

chdb hosts one engine per process and path; every ``chdb.connect(path)`` is a cheap (~1.5 ms) handle on it with
its own query context (current database, SET values). Queries on DIFFERENT handles run concurrently (measured);
calls on ONE handle are serialised by chdb. So each request gets a FRESH handle - exactly ClickHouse's HTTP model
of a new query context per request, with nothing (settings, USE, temporary tables) leaking into the next request -
and a ``session_id`` keeps its handle between requests. An anchor handle stays open for the server's lifetime:
closing the last handle shuts the engine down, and the next connect would reload every table.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chdb

from finpulse.stack.clickhouse.errors import (
    ABORTED,
    READONLY,
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    TOO_MANY_SIMULTANEOUS_QUERIES,
    ClickHouseError,
)
from finpulse.stack.clickhouse.statement_guard import tokens
from finpulse.stack.clickhouse.users import User

log = logging.getLogger(__name__)

LOCK_FILE = "finpulse-endpoint.lock"


class EngineOpenError(RuntimeError):
    """The data dir cannot be opened; the message says why and what to do."""


@dataclass(frozen=True)
class Result:
    data: bytes
    rows_read: int = 0
    bytes_read: int = 0
    elapsed_s: float = 0.0
    written_rows: int = 0
    written_bytes: int = 0


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _stats(result: Any) -> tuple[int, int, float]:
    try:
        return int(result.rows_read()), int(result.bytes_read()), float(result.elapsed())
    except Exception:  # statistics are optional; DDL results may lack them
        return 0, 0, 0.0


def strictest_readonly(*levels: int) -> int:
    """ClickHouse's readonly levels are not ordered by number: 1 (read only) is stricter than 2 (read, and change
    settings), which is stricter than 0."""
    return 1 if 1 in levels else max(levels)


class Inserter:
    """A streaming INSERT: ``append`` FORMAT-encoded bytes in any pieces, then ``finish`` to commit."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.received_bytes = 0

    def append(self, data: bytes) -> None:
        if not data:
            return
        self.received_bytes += len(data)
        try:
            self._stream.append(data)
        except Exception as exc:
            self.cancel()
            raise ClickHouseError.from_engine(exc) from exc

    def finish(self) -> Result:
        try:
            done = self._stream.finish()
        except Exception as exc:
            raise ClickHouseError.from_engine(exc) from exc
        return Result(b"", elapsed_s=done.elapsed, written_rows=done.rows_written, written_bytes=done.bytes_written)

    def cancel(self) -> None:
        try:
            self._stream.cancel()
        except Exception:
            log.debug("cancel of a failed insert failed", exc_info=True)


class SpooledInserter:
    """An INSERT whose data is spooled to a file (``append``), then run as one ``INSERT ... FROM INFILE`` query
    (``finish``): constant memory, and every refusal reported.

    Why not chdb's streaming inserter (``send_insert``): for rows the table refuses after parsing - a CHECK
    constraint, a materialized view that throws - its ``finish`` reports success with ``rows_written`` set, and
    stores none of the rows (chdb 4.4.0; the error only shows up in system.errors). A client would take the batch
    for stored. A query reports those errors as ClickHouse does."""

    def __init__(self, context: Context, statement: str, fmt: str, spool_dir: Path) -> None:
        self._context = context
        self._statement = statement
        self._fmt = fmt
        spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = spool_dir / f"insert-{uuid.uuid4().hex}.data"
        # O_EXCL: never follow or reuse a file someone planted; 0600 like every file of the data dir.
        self._file = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        self.received_bytes = 0

    def append(self, data: bytes) -> None:
        if not data:
            return
        self.received_bytes += len(data)
        self._file.write(data)

    def finish(self) -> Result:
        try:
            self._file.close()
            query = infile_statement(self._statement, str(self.path), self._fmt)
            try:
                result = self._context.conn.query(query, "TabSeparated")
            except Exception as exc:
                raise ClickHouseError.from_engine(exc) from exc
            rows_read, bytes_read, elapsed = _stats(result)
            return Result(
                b"",
                rows_read,
                bytes_read,
                elapsed,
                written_rows=int(result.rows_written()),
                written_bytes=int(result.bytes_written()),
            )
        finally:
            self.cancel()

    def cancel(self) -> None:
        try:
            self._file.close()
        finally:
            self.path.unlink(missing_ok=True)


def infile_statement(statement: str, path: str, fmt: str) -> str:
    """``INSERT INTO t [(cols)] [SETTINGS ...]`` as ``INSERT INTO t [(cols)] FROM INFILE 'path' COMPRESSION 'none'
    [SETTINGS ...] FORMAT fmt`` (FROM INFILE comes before a SETTINGS clause in ClickHouse's grammar)."""
    depth = 0
    cut = len(statement)
    for tok in tokens(statement):
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
        elif depth == 0 and tok.upper == "SETTINGS":
            cut = tok.pos
            break
    head, tail = statement[:cut].rstrip(), statement[cut:].strip()
    infile = f"FROM INFILE {_quote_value(path)} COMPRESSION 'none'"
    return " ".join(part for part in (head, infile, tail, f"FORMAT {fmt}") if part)


def spools_inserts(statement: str) -> bool:
    """A table is the target (``INSERT INTO [TABLE] t``), not a table function, which FROM INFILE cannot feed."""
    words = [t.upper for t in tokens(statement)][:4]
    return "FUNCTION" not in words


class Context:
    """One engine query context (a chdb handle) for one request or one session."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def run(self, sql: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Result:
        try:
            result = self.conn.query(sql, fmt, params=params or {})
        except Exception as exc:
            raise ClickHouseError.from_engine(exc) from exc
        rows, nbytes, elapsed = _stats(result)
        return Result(result.bytes() or b"", rows, nbytes, elapsed)

    def stream(self, sql: str, fmt: str, params: dict[str, str] | None = None) -> Generator[bytes, None, None]:
        """Result chunks as the engine produces them (one per block): constant memory for large results."""
        try:
            streaming = self.conn.send_query(sql, fmt, params=params or {})
        except Exception as exc:
            raise ClickHouseError.from_engine(exc) from exc
        try:
            while True:
                try:
                    chunk = next(streaming)
                except StopIteration:
                    return
                except Exception as exc:
                    raise ClickHouseError.from_engine(exc) from exc
                payload = chunk.bytes() if hasattr(chunk, "bytes") else bytes(chunk)
                if payload:
                    yield payload
        finally:
            try:
                streaming.close()
            except Exception:
                log.debug("closing a result stream failed", exc_info=True)

    def begin_insert(self, statement: str, fmt: str, spool_dir: Path | None = None) -> Inserter | SpooledInserter:
        """Into a table (with a ``spool_dir``): spooled, so that every refusal is reported (SpooledInserter).
        Into a table function: streamed."""
        if spool_dir is not None and spools_inserts(statement):
            return SpooledInserter(self, statement, fmt, spool_dir)
        try:
            return Inserter(self.conn.send_insert(statement, fmt))
        except Exception as exc:
            raise ClickHouseError.from_engine(exc) from exc

    def use(self, database: str) -> None:
        self.run(f"USE {_quote_identifier(database)}")

    def apply_setting(self, name: str, value: str) -> None:
        try:
            self.run(f"SET {name} = {_quote_value(value)}")
        except ClickHouseError as exc:
            # A read-only context may not change a setting, but may "set" it to the value it already has
            # (ClickHouse accepts that too; clients resend their defaults on every request).
            if exc.code != READONLY or self.current_setting(name) != value:
                raise

    def current_setting(self, name: str) -> str | None:
        rows = self.run("SELECT value FROM system.settings WHERE name = {n:String}", "TabSeparatedRaw", {"n": name})
        return rows.data.decode().rstrip("\n") if rows.data else None

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            log.debug("closing an engine handle failed", exc_info=True)


@dataclass
class _Session:
    context: Context
    timeout_s: float
    lock: threading.Lock
    last_used: float


class DataDirLock:
    """Our own exclusive lock on the data dir, taken before chdb opens it, so a second endpoint (or the real
    binary) on the same dir fails with a message naming the holder instead of chdb's bare BAD_ARGUMENTS."""

    def __init__(self, path: Path) -> None:
        self.path = path / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        data = self.path.parent
        if data.exists() and not data.is_dir():
            raise EngineOpenError(
                f"ClickHouse data dir {data} is not a directory: move it aside or fix FINPULSE_DATA_DIR"
            )
        data.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EngineOpenError(
                f"ClickHouse data dir {self.path.parent} is in use by another process (pid {holder}): the local "
                "endpoint is probably already running. Stop it (`finpulse down`) or use another FINPULSE_DATA_DIR."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        # ClickHouse itself flocks <path>/status; probe it so a foreign chdb process (a notebook) is named too.
        status = self.path.parent / "status"
        if status.exists():
            probe = os.open(status, os.O_RDONLY)
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(probe, fcntl.LOCK_UN)
            except BlockingIOError:
                self.release()
                raise EngineOpenError(
                    f"ClickHouse data dir {self.path.parent} is locked by another process using ClickHouse/chdb "
                    f"(see {status}). Stop that process or use another FINPULSE_DATA_DIR."
                ) from None
            finally:
                os.close(probe)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Engine:
    def __init__(self, path: Path, anchor: Any, *, max_concurrent: int = 32, max_sessions: int = 100) -> None:
        self.path = path
        # INSERT data waits here for its query (SpooledInserter); what a crash left behind is dropped at start.
        self.spool_dir = path / "insert_spool"
        if self.spool_dir.is_dir():
            for stale in self.spool_dir.glob("insert-*.data"):
                stale.unlink(missing_ok=True)
        self._anchor = Context(anchor)
        version = self._anchor.run("SELECT version(), timezone()").data.decode().strip().split("\t")
        self.version, self.timezone = version[0], version[1]
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._sessions_lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition()
        self._closing = False
        self.max_sessions = max_sessions
        # Sessions expire on their own, not only when a new one is asked for.
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="session-reaper", daemon=True)
        self._reaper.start()

    def _reap(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._expire_sessions()
            except Exception:  # never let the reaper die
                log.exception("expiring sessions failed")

    @classmethod
    def open(cls, path: Path, *, max_concurrent: int = 32, max_sessions: int = 100) -> Engine:
        """Open the engine on ``path`` (created when missing); EngineOpenError with advice when it cannot."""
        if path.exists() and not path.is_dir():
            raise EngineOpenError(
                f"ClickHouse data dir {path} is not a directory: move it aside or fix FINPULSE_DATA_DIR"
            )
        path.mkdir(parents=True, exist_ok=True)
        try:
            anchor = chdb.connect(str(path))
            engine = cls(path, anchor, max_concurrent=max_concurrent, max_sessions=max_sessions)
        except EngineOpenError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineOpenError(
                f"cannot open ClickHouse data dir {path}: {first}. If the dir is damaged, move it aside "
                f"(mv {path} {path}.broken) and start again: migrations re-create the schema, data comes back only "
                "from a backup."
            ) from exc
        return engine

    # --- contexts ---------------------------------------------------------------------------------------------

    def open_context(
        self,
        user: User,
        *,
        readonly: int = 0,
        database: str | None = None,
        settings: dict[str, str] | None = None,
        session_id: str | None = None,
        session_timeout: float = 60.0,
        session_check: bool = False,
    ) -> tuple[Context, Callable[[], None]]:
        """A ready context and the function that releases it (call it exactly once, from any thread)."""
        with self._idle:
            if self._closing:
                raise ClickHouseError(ABORTED, "Server is shutting down")
            self._in_flight += 1
        try:
            self._slots.acquire()
            try:
                if session_id:
                    context, release_session = self._session_context(user, session_id, session_timeout, session_check)
                else:
                    level = strictest_readonly(user.readonly, readonly)
                    context, release_session = self._fresh_context(level, user.limits), None
                try:
                    if database:
                        context.use(database)
                    for name, value in (settings or {}).items():
                        context.apply_setting(name, value)
                except BaseException:
                    self._release(context, release_session)
                    raise
            except BaseException:
                self._slots.release()
                raise
        except BaseException:
            self._done()
            raise
        released = [False]

        def release() -> None:
            if released[0]:
                return
            released[0] = True
            try:
                self._release(context, release_session)
            finally:
                self._slots.release()
                self._done()

        return context, release

    @contextmanager
    def context(self, user: User, **kwargs: Any) -> Iterator[Context]:
        context, release = self.open_context(user, **kwargs)
        try:
            yield context
        finally:
            release()

    def _fresh_context(self, readonly: int, limits: dict[str, str] | None = None) -> Context:
        try:
            context = Context(chdb.connect(str(self.path)))
        except Exception as exc:
            raise ClickHouseError.from_engine(exc) from exc
        if limits:
            # Before readonly: once it is set, the user's limits cannot be changed by SET any more.
            context.run("SET " + ", ".join(f"{name} = {_quote_value(value)}" for name, value in limits.items()))
        if readonly:
            # Set first, by the engine: from here on it refuses writes, DDL and any attempt to lift it.
            context.run(f"SET readonly = {int(readonly)}")
        return context

    def _session_context(self, user: User, session_id: str, timeout: float, check: bool) -> tuple[Context, Any]:
        key = (user.name, session_id)
        self._expire_sessions()
        with self._sessions_lock:
            session = self._sessions.get(key)
            if session is None:
                if check:
                    raise ClickHouseError(SESSION_NOT_FOUND, f"Session {session_id} not found")
                if len(self._sessions) >= self.max_sessions:
                    raise ClickHouseError(
                        TOO_MANY_SIMULTANEOUS_QUERIES,
                        f"Too many open sessions ({self.max_sessions}): close one or let it expire "
                        "(session_timeout), or raise FINPULSE_CLICKHOUSE_MAX_SESSIONS",
                    )
                context = self._fresh_context(user.readonly, user.limits)
                session = _Session(context, timeout, threading.Lock(), time.monotonic())
                self._sessions[key] = session
            if not session.lock.acquire(blocking=False):
                raise ClickHouseError(SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client")
            session.timeout_s = timeout
        return session.context, session

    def _release(self, context: Context, session: _Session | None) -> None:
        if session is None:
            context.close()
        else:
            session.last_used = time.monotonic()
            session.lock.release()

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        expired: list[_Session] = []
        with self._sessions_lock:
            for key, session in list(self._sessions.items()):
                if now - session.last_used > session.timeout_s and session.lock.acquire(blocking=False):
                    expired.append(self._sessions.pop(key))
        for session in expired:
            session.context.close()
            session.lock.release()

    def _done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    # --- status and shutdown ----------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def ping(self) -> bool:
        try:
            return self._anchor.run("SELECT 1").data.strip() == b"1"
        except ClickHouseError:
            return False

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new work, let in-flight queries finish, then close every handle (the anchor last), which shuts
        the engine down cleanly so acknowledged inserts are on disk."""
        self._stop.set()
        with self._idle:
            self._closing = True
            deadline = time.monotonic() + timeout
            while self._in_flight and time.monotonic() < deadline:
                self._idle.wait(0.1)
            if self._in_flight:
                log.warning("closing with queries still running", extra={"in_flight": self._in_flight})
        with self._sessions_lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.context.close()
        self._anchor.close()
