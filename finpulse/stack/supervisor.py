"""The local stack supervisor: starts every part in order, waits for health, restarts crashes, stops cleanly.

One supervisor per data directory (a lock file guards it). Its state - pids, endpoints, health, restarts - is
written to ``<data_dir>/run/state.json`` for `finpulse status` and `finpulse down`.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from finpulse.files import PRIVATE_UMASK, private_dir, private_files
from finpulse.settings import Settings
from finpulse.stack.errors import StackError

log = logging.getLogger(__name__)

HEALTHY_RESET_S = 60.0  # a child healthy this long has its restart backoff reset


@dataclass
class ServiceSpec:
    """One supervised part. ``argv`` None means an external server: nothing to run, only health and setup."""

    name: str
    endpoint: str
    healthy: Callable[[], bool]
    argv: Callable[[], list[str]] | None = None
    after_start: Callable[[], object] | None = None  # its result is ignored
    env: dict[str, str] = field(default_factory=dict)
    stop_timeout_s: float = 30.0
    note: str = ""
    ports: tuple[int, ...] = ()
    host: str = "127.0.0.1"
    # The next part may start before this one is healthy (Kafka and ClickHouse boot side by side).
    independent: bool = False
    # Run after_start before waiting for health (a step whose setup is what makes it healthy: the model).
    setup_first: bool = False
    # Counters `finpulse status` shows for this part (e.g. ingest's per-source counts); None when not answering.
    details: Callable[[], dict[str, Any] | None] | None = None


@dataclass
class _Child:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    restarts: int = 0
    backoff_s: float = 1.0
    healthy_since: float | None = None
    restart_at: float | None = None


def state_path(settings: Settings) -> Path:
    return settings.run_dir / "state.json"


def read_state(settings: Settings) -> dict[str, Any] | None:
    try:
        state = json.loads(state_path(settings).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    # Children get SIGTERM if the supervisor itself is killed, so no orphan broker keeps a port or a data lock.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervisor:
    def __init__(self, settings: Settings, specs: list[ServiceSpec]) -> None:
        self.settings = settings
        self.children = [_Child(spec) for spec in specs]
        self.stopping = threading.Event()
        self.phase = "starting"
        self._lock_fd: int | None = None
        self.log_dir = settings.run_dir / "logs"

    # --- lifecycle -------------------------------------------------------------------------------------------
    def acquire(self) -> None:
        for folder in (self.settings.data_dir, self.settings.run_dir, self.log_dir):
            private_dir(folder)
        for folder in (self.settings.run_dir, self.log_dir):
            private_files(folder)
        fd = os.open(self.settings.run_dir / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            state = read_state(self.settings) or {}
            raise StackError(
                f"FinPulse is already running on {self.settings.data_dir} (supervisor pid {state.get('pid', '?')}); "
                "see `finpulse status`, or `finpulse down` first"
            ) from exc
        self._lock_fd = fd

    def run(self, on_ready: Callable[[Supervisor], None] | None = None) -> int:
        """Start everything, supervise until SIGTERM/SIGINT, then stop in reverse order. Returns the exit code."""
        self.acquire()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        private_dir(self.log_dir)
        try:
            booting: list[_Child] = []
            for child in self.children:
                if self.stopping.is_set():
                    break
                self._spawn(child)
                booting.append(child)
                if not child.spec.independent:
                    for started in booting:
                        self._ready(started)
                    booting.clear()
            for started in booting:
                self._ready(started)
            if not self.stopping.is_set():
                self.phase = "running"
                self._write_state()
                log.info("FinPulse is up", extra={"data_dir": str(self.settings.data_dir)})
                if on_ready:
                    on_ready(self)
            while not self.stopping.wait(0.5):
                self._watch()
            return 0
        except StackError as exc:
            self.phase = "failed"
            self._write_state(error=str(exc))
            log.error("start failed: %s", exc)
            return 1
        except Exception as exc:  # a part's setup failed unexpectedly: stop the rest, keep the traceback in the log
            self.phase = "failed"
            self._write_state(error=f"{type(exc).__name__}: {exc}")
            log.exception("start failed")
            return 1
        finally:
            self.stop()

    def stop(self) -> None:
        self.phase = "stopping"
        self._write_state()
        for child in reversed(self.children):
            self._terminate(child)
        self.phase = "stopped"
        self._write_state()
        log.info("FinPulse stopped")

    # --- children --------------------------------------------------------------------------------------------
    def _start(self, child: _Child) -> None:
        self._spawn(child)
        self._ready(child)

    def _spawn(self, child: _Child) -> None:
        spec = child.spec
        if spec.argv is not None:
            argv = spec.argv()
            self._check_not_serving(spec)
            log_path = self.log_dir / f"{spec.name}.log"
            fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.chmod(log_path, 0o600)
            child.log_file = os.fdopen(fd, "ab")
            env = {**os.environ, **self.settings.child_env(), **spec.env}
            log.info("starting %s", spec.name, extra={"argv": " ".join(argv[:3]) + " ..."})
            child.proc = subprocess.Popen(
                argv,
                stdout=child.log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children in order
                preexec_fn=_die_with_parent,
                umask=PRIVATE_UMASK,  # a service's data, logs and sockets are the owner's only
            )

    def _ready(self, child: _Child) -> None:
        """Wait until the part is healthy, then run its setup (topics, migrations)."""
        spec = child.spec
        if spec.setup_first and spec.after_start:
            spec.after_start()
        self._wait_healthy(child)
        if self.stopping.is_set():
            return
        if spec.after_start and not spec.setup_first:
            spec.after_start()
        child.healthy_since = time.monotonic()
        log.info("%s healthy", spec.name, extra={"endpoint": spec.endpoint, "note": spec.note})
        self._write_state()

    def _check_not_serving(self, spec: ServiceSpec) -> None:
        for port in spec.ports:
            if not port_free(spec.host, port):
                raise StackError(
                    f"port {port} on {spec.host}, needed by {spec.name}, is already in use: another FinPulse "
                    f"(`finpulse status`) or another server holds it; stop it or choose another port "
                    f"(FINPULSE_*_PORT settings)"
                )

    def _wait_healthy(self, child: _Child) -> None:
        spec = child.spec
        deadline = time.monotonic() + self.settings.health_timeout_s
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                return
            if child.proc is not None and child.proc.poll() is not None:
                raise StackError(
                    f"{spec.name} exited with code {child.proc.returncode} during start-up:\n"
                    f"{self.log_tail(spec.name)}\n(full log: {self.log_dir / (spec.name + '.log')})"
                )
            if spec.healthy():
                return
            time.sleep(0.25)
        raise StackError(
            f"{spec.name} did not become healthy at {spec.endpoint} within {self.settings.health_timeout_s:.0f} s; "
            f"see {self.log_dir / (spec.name + '.log')}"
        )

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.log_dir / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def _watch(self) -> None:
        now = time.monotonic()
        for child in self.children:
            proc = child.proc
            if proc is None:
                continue
            if proc.poll() is None:
                if child.healthy_since and now - child.healthy_since > HEALTHY_RESET_S:
                    child.backoff_s = 1.0
                continue
            if child.restart_at is None:
                child.restart_at = now + child.backoff_s
                child.healthy_since = None
                log.error(
                    "%s exited with code %s; restarting in %.0f s",
                    child.spec.name,
                    proc.returncode,
                    child.backoff_s,
                    extra={"tail": self.log_tail(child.spec.name, 5)},
                )
                self._write_state()
            elif now >= child.restart_at:
                child.restart_at = None
                child.restarts += 1
                child.backoff_s = min(child.backoff_s * 2, self.settings.restart_backoff_max_s)
                try:
                    self._start(child)
                except StackError as exc:
                    log.error("restart of %s failed: %s", child.spec.name, exc)

    def _terminate(self, child: _Child) -> None:
        proc = child.proc
        if proc is not None and proc.poll() is None:
            log.info("stopping %s", child.spec.name)
            proc.terminate()
            try:
                proc.wait(timeout=child.spec.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", child.spec.name, child.spec.stop_timeout_s)
                proc.kill()
                proc.wait()
        if child.log_file:
            child.log_file.close()
            child.log_file = None

    # --- state -----------------------------------------------------------------------------------------------
    def _write_state(self, error: str | None = None) -> None:
        state = {
            "pid": os.getpid(),
            "phase": self.phase,
            "data_dir": str(self.settings.data_dir),
            "updated_at": time.time(),
            "error": error,
            "services": {
                c.spec.name: {
                    "endpoint": c.spec.endpoint,
                    "pid": c.proc.pid if c.proc and c.proc.poll() is None else None,
                    "managed": c.spec.argv is not None,
                    "restarts": c.restarts,
                    "note": c.spec.note,
                }
                for c in self.children
            },
        }
        path = state_path(self.settings)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(state, indent=2))
        tmp.replace(path)
