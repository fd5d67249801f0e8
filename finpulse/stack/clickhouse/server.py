"""``python -m finpulse.stack.clickhouse.server``: the local ClickHouse endpoint (chdb behind the HTTP interface).

HTTP stack: uvicorn + Starlette. uvicorn's h11 parser handles chunked request bodies, keep-alive and pipelining
correctly, and its SIGTERM handling stops accepting, lets in-flight requests finish, then returns - after which we
close the engine so every acknowledged insert is on disk. A hand-written http.server would have to get all of that
right by itself.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from finpulse.logs import setup_logging
from finpulse.settings import ConfigFileError, Settings, load_settings
from finpulse.stack.clickhouse.admission import Admission, HostGuard
from finpulse.stack.clickhouse.chdb_session import DataDirLock, Engine, EngineOpenError
from finpulse.stack.clickhouse.http_app import create_app
from finpulse.stack.clickhouse.users import PasswordlessUserError, Users

log = logging.getLogger("finpulse.stack.clickhouse.server")

SHUTDOWN_GRACE_S = 60  # seconds (uvicorn takes whole seconds)


class PortInUseError(RuntimeError):
    pass


class _Stopped(Exception):
    """Raised by our signal handler: uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, and with the
    default handler that would kill the process before the engine is closed."""


class _DropColorMessage(logging.Filter):
    """uvicorn attaches an ANSI-coloured copy of each message as an extra; structured logs want it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def data_path(settings: Settings) -> Path:
    return settings.data_dir / "clickhouse"


def user_files_path(settings: Settings) -> Path:
    """Where the admin's file() and INTO OUTFILE may read and write, like a real server's user_files_path."""
    return data_path(settings) / "user_files"


def bind(host: str, port: int) -> socket.socket:
    """Bind before anything else, so a busy port fails fast with one message instead of uvicorn's traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"ClickHouse endpoint cannot listen on {host}:{port}: the port is already in use. Stop the process "
                f"holding it (find it with `ss -ltnp 'sport = :{port}'`; a running stack stops with `finpulse down`) "
                "or choose another port with FINPULSE_CLICKHOUSE_PORT."
            ) from None
        raise PortInUseError(f"ClickHouse endpoint cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> int:
    path = data_path(settings)
    try:
        users = Users.from_settings(settings)
    except PasswordlessUserError as exc:
        log.error(str(exc))
        return 2
    try:
        sock = bind(settings.clickhouse_host, settings.clickhouse_port)
    except PortInUseError as exc:
        log.error(str(exc))
        return 2
    lock = DataDirLock(path)
    try:
        lock.acquire()
        user_files = user_files_path(settings)
        user_files.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The engine resolves relative file() / INTO OUTFILE paths against the working directory; statement_guard.py
        # refuses absolute paths outside it and any '..'.
        os.chdir(user_files)
        engine = Engine.open(
            path,
            max_concurrent=settings.clickhouse_max_concurrent_queries,
            max_sessions=settings.clickhouse_max_sessions,
        )
    except EngineOpenError as exc:
        lock.release()
        sock.close()
        log.error(str(exc))
        return 3
    try:
        app = create_app(
            engine,
            users,
            admission=Admission(
                settings.clickhouse_max_concurrent_queries,
                settings.clickhouse_max_queued_queries,
                settings.clickhouse_queue_timeout_s,
            ),
            hosts=HostGuard.from_settings(settings),
            user_files=user_files,
            max_query_bytes=settings.clickhouse_max_query_bytes,
        )
        config = uvicorn.Config(
            app,
            log_config=None,  # our structured logging, configured once
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        log.info(
            "ClickHouse endpoint ready",
            extra={
                "url": f"http://{settings.clickhouse_host}:{settings.clickhouse_port}",
                "data": str(path),
                "engine": f"chdb {engine.version}",
            },
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _raise_stopped)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except _Stopped as stop:
            log.info("stopping on signal", extra={"signal": signal.Signals(stop.args[0]).name})
    finally:
        engine.close(timeout=SHUTDOWN_GRACE_S)
        lock.release()
        sock.close()
        log.info("ClickHouse endpoint stopped", extra={"data": str(path)})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m finpulse.stack.clickhouse.server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--data-dir", type=Path, help="overrides FINPULSE_DATA_DIR")
    parser.add_argument("--host", help="overrides FINPULSE_CLICKHOUSE_HOST")
    parser.add_argument("--port", type=int, help="overrides FINPULSE_CLICKHOUSE_PORT")
    args = parser.parse_args(argv)
    overrides = {
        key: value
        for key, value in (("data_dir", args.data_dir), ("clickhouse_host", args.host), ("clickhouse_port", args.port))
        if value is not None
    }
    try:
        settings = load_settings(**overrides)
    except (ConfigFileError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format, service="clickhouse")
    logging.getLogger("uvicorn.error").addFilter(_DropColorMessage())
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
