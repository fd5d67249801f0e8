"""Replay jobs handed to the running ingest worker through a spool directory inside its state dir.

`finpulse ingest replay FILE` next to a running stack cannot open the worker's state (one writer holds its lock),
yet it must share that worker's dedupe memory, or replaying a file twice would produce it twice. So the CLI hands
the replay to the worker that holds the lock:

    <state_dir>/spool/tmp/<job>.json        the CLI writes the job here ...
    <state_dir>/spool/incoming/<job>.json   ... and renames it in (atomic: the worker never sees half a job)
    <state_dir>/spool/jobs/<job>.json       the worker claims it by renaming it here (one claimant, ever)
    <state_dir>/spool/jobs/<job>.state.json progress and the final counts, replaced atomically after each batch
    <state_dir>/spool/jobs/<job>.cancel     the CLI asks the worker to stop the job (Ctrl-C)

Why a spool and not the push endpoint: the worker runs the very same replay.Source a standalone replay runs
(same source name, so the same document ids; same mapping, kind, time order and --speed schedule), and its file
position is checkpointed in the same transaction as the documents. A killed CLI or a killed worker therefore
neither loses nor repeats rows: a job left unfinished in jobs/ resumes from its checkpoint when the worker starts
again. Push would need an API key (none is configured on a fresh install, so push answers 401), is rate limited
per request, forces kind=comment and a `push:` source (other ids than a standalone replay of the same file), keeps
no file position, and would put the file's time gaps on the client. The spool needs no key: whoever may write the
worker's state dir may feed it, which is the user who runs the stack.

The worker must see the file at the same path (the CLI sends the absolute path), which holds for `finpulse up`;
a worker in a container with another file system view fails the job with "cannot read".
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ingest.sources import replay
from ingest.sources.base import SourceContext
from ingest.sources.replay import ReplayCounts

log = logging.getLogger(__name__)

FINAL = ("done", "failed", "cancelled")
CLAIM_TIMEOUT_S = 10.0  # a live worker claims a job within one scan (POLL_S); longer means it does not take jobs
POLL_S = 0.25
KEEP_FINISHED_S = 7 * 86400.0
_PROGRESS_EVERY_S = 0.5


class SpoolError(RuntimeError):
    """The job could not be handed over or the worker went away; the message says what to do."""


def spool_dir(state_dir: Path) -> Path:
    return state_dir / "spool"


def _dirs(root: Path) -> tuple[Path, Path, Path]:
    tmp, incoming, jobs = root / "tmp", root / "incoming", root / "jobs"
    for d in (tmp, incoming, jobs):
        d.mkdir(parents=True, exist_ok=True)
    return tmp, incoming, jobs


def _write_json(path: Path, value: dict[str, Any]) -> None:
    """Readers see the old or the new content, never a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# --- the job -------------------------------------------------------------------------------------------------


OPTIONS = ("shift_to_now",)  # replay.Source arguments beyond its replay.Config


def job_to_json(job_id: str, cfg: replay.Config, **options: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "replay": {**asdict(cfg), "path": str(cfg.path)},
        "options": options,
        "submitted": time.time(),
    }


def job_from_json(value: dict[str, Any]) -> tuple[str, replay.Config, dict[str, Any]]:
    """The job's id, replay config and options; ValueError names what is wrong with a job file."""
    job_id, raw, options = value.get("id"), value.get("replay"), value.get("options") or {}
    if not isinstance(job_id, str) or not isinstance(raw, dict) or not isinstance(options, dict):
        raise ValueError("job file needs 'id' and 'replay'")
    if set(options) - set(OPTIONS):
        raise ValueError(f"unknown job option(s) {', '.join(sorted(set(options) - set(OPTIONS)))}")
    known = {f.name for f in fields(replay.Config)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown replay option(s) {', '.join(unknown)}")
    try:
        return job_id, replay.Config(**{**raw, "path": Path(raw["path"])}), options
    except (KeyError, TypeError) as exc:
        raise ValueError(f"bad replay options: {exc}") from exc


@dataclass
class JobState:
    """What the worker reports about one job, and what the CLI prints from."""

    id: str
    source: str
    path: str
    state: str = "running"  # running | interrupted (worker stopped; resumes) | done | failed | cancelled
    topic: str = ""
    ready: bool = False  # the worker's pipeline produces (Kafka recovery done)
    counts: dict[str, int] = field(default_factory=lambda: ReplayCounts().as_dict())
    error: str | None = None
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    resumed: int = 0  # how often a worker restart resumed it

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> JobState:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})

    @property
    def final(self) -> bool:
        return self.state in FINAL


# --- the client side: the CLI ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningWorker:
    pid: int | None
    spool: bool  # False: a one-off worker (replay/generate) or an older version that takes no jobs


def running_worker(state_dir: Path) -> RunningWorker | None:
    """The worker holding the state dir's lock, or None when no worker runs there."""
    lock = state_dir / "worker.lock"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_json(lock) or {}
            pid = info.get("pid")
            return RunningWorker(pid if isinstance(pid, int) else None, bool(info.get("spool", False)))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def submit(state_dir: Path, cfg: replay.Config, **options: Any) -> str:
    """Hand a replay to the worker: written aside, then renamed into incoming/ in one step."""
    tmp, incoming, _ = _dirs(spool_dir(state_dir))
    job_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    _write_json(tmp / f"{job_id}.json", job_to_json(job_id, cfg, **options))
    os.rename(tmp / f"{job_id}.json", incoming / f"{job_id}.json")
    return job_id


def _withdraw(root: Path, job_id: str) -> bool:
    """Take back a job no worker claimed yet; False when a worker claimed it meanwhile."""
    try:
        os.rename(root / "incoming" / f"{job_id}.json", root / "tmp" / f"{job_id}.withdrawn")
    except FileNotFoundError:
        return False
    (root / "tmp" / f"{job_id}.withdrawn").unlink(missing_ok=True)
    return True


def cancel(state_dir: Path, job_id: str) -> None:
    root = spool_dir(state_dir)
    if not _withdraw(root, job_id):
        (root / "jobs" / f"{job_id}.cancel").touch()


def job_state(state_dir: Path, job_id: str) -> JobState | None:
    value = _read_json(spool_dir(state_dir) / "jobs" / f"{job_id}.state.json")
    return JobState.from_json(value) if value else None


def wait(
    state_dir: Path,
    job_id: str,
    on_progress: Callable[[JobState | None], None] | None = None,
    *,
    claim_timeout_s: float = CLAIM_TIMEOUT_S,
    poll_s: float = POLL_S,
) -> JobState:
    """Follow the job until the worker reports a final state. SpoolError when no worker claims it in time or the
    worker stops before it finished (its checkpoint stays: the job resumes when the worker starts again)."""
    root = spool_dir(state_dir)
    submitted = time.monotonic()
    last_lock_check = 0.0
    while True:
        state = job_state(state_dir, job_id)
        if state is not None and state.final:
            return state
        if on_progress is not None:
            on_progress(state)
        claimed = not (root / "incoming" / f"{job_id}.json").exists()
        if not claimed and time.monotonic() - submitted > claim_timeout_s and _withdraw(root, job_id):
            raise SpoolError(
                f"the ingest worker holding {state_dir} did not take the replay within {claim_timeout_s:.0f} s "
                "(a one-off `ingest replay`/`generate`, or an older version); wait for it to finish, or set "
                "FINPULSE_INGEST_STATE_DIR to replay on its own"
            )
        now = time.monotonic()
        if claimed and now - last_lock_check > 1.0:
            last_lock_check = now
            if running_worker(state_dir) is None:
                state = job_state(state_dir, job_id)
                if state is not None and state.final:
                    return state
                raise SpoolError(
                    "the ingest worker stopped before the replay finished; it resumes from its last checkpoint "
                    "when the worker starts again (`finpulse up`)"
                )
        time.sleep(poll_s)


# --- the worker side ------------------------------------------------------------------------------------------


@dataclass
class _Active:
    state: JobState
    stop: threading.Event
    thread: threading.Thread


class SpoolRunner:
    """A source of the long-running worker: claims replay jobs from the spool and runs each in its own thread,
    through the worker's pipeline (its dedupe memory and checkpoints). Unfinished jobs resume on start."""

    name = "spool"

    def __init__(
        self, state_dir: Path, batch_size: int, topic: str, busy: tuple[str, ...] = (), poll_s: float = POLL_S
    ) -> None:
        self.root = spool_dir(state_dir)
        self.batch_size = batch_size
        self.topic = topic
        self.busy = set(busy)  # the worker's configured sources: a job may not write their positions
        self.poll_s = poll_s
        self.active: dict[str, _Active] = {}
        self._lock = threading.Lock()

    def snapshot(self) -> list[dict[str, Any]]:
        """Running jobs, for the worker's /status."""
        with self._lock:
            return [asdict(a.state) for a in self.active.values()]

    def run(self, ctx: SourceContext) -> None:
        _, incoming, jobs = _dirs(self.root)
        self._resume(ctx, jobs)
        try:
            while True:
                for path in sorted(incoming.glob("*.json")):
                    claimed = jobs / path.name
                    try:
                        os.rename(path, claimed)  # the claim: exactly one worker wins it
                    except FileNotFoundError:
                        continue
                    self._start(ctx, claimed, None)
                if not ctx.sleep(self.poll_s):
                    break
        finally:
            with self._lock:
                running = list(self.active.values())
            for active in running:
                active.stop.set()
            for active in running:
                active.thread.join(30)

    def _resume(self, ctx: SourceContext, jobs: Path) -> None:
        now = time.time()
        for path in sorted(jobs.glob("*.json")):
            if path.name.endswith(".state.json"):
                continue
            state_path = path.with_name(path.name[: -len(".json")] + ".state.json")
            value = _read_json(state_path)
            state = JobState.from_json(value) if value else None
            if state is not None and state.final:
                if now - state.updated > KEEP_FINISHED_S:
                    for p in (path, state_path, path.with_suffix(".cancel")):
                        p.unlink(missing_ok=True)
                continue
            self._start(ctx, path, state)

    def _start(self, ctx: SourceContext, job_path: Path, previous: JobState | None) -> None:
        value = _read_json(job_path)
        job_id = job_path.name[: -len(".json")]
        state_path = job_path.with_name(f"{job_id}.state.json")
        try:
            if value is None:
                raise ValueError("job file is not JSON")
            job_id, cfg, options = job_from_json(value)
        except ValueError as exc:
            _write_json(state_path, asdict(JobState(job_id, "?", "?", "failed", self.topic, error=str(exc))))
            log.warning("spool: job %s refused: %s", job_id, exc)
            return
        state = JobState(job_id, cfg.name, str(cfg.path), topic=self.topic, ready=ctx.pipeline.ready.is_set())
        if previous is not None:  # a worker restart: continue from the checkpoint, keep what was counted
            state.counts, state.started, state.resumed = previous.counts, previous.started, previous.resumed + 1
        with self._lock:
            clash = cfg.name in self.busy or any(a.state.source == cfg.name for a in self.active.values())
        if clash:
            state.state, state.error = "failed", f"source {cfg.name} is busy in the worker; pass another --source"
            _write_json(state_path, asdict(state))
            return
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run_job,
            args=(ctx, cfg, options, state, stop, previous is not None),
            name=f"spool-{job_id}",
        )
        with self._lock:
            self.active[job_id] = _Active(state, stop, thread)
        _write_json(state_path, asdict(state))
        log.info("spool: replay job %s claimed (%s, source %s)", job_id, cfg.path, cfg.name)
        thread.start()

    def _run_job(
        self,
        ctx: SourceContext,
        cfg: replay.Config,
        options: dict[str, Any],
        state: JobState,
        stop: threading.Event,
        resumed: bool,
    ) -> None:
        state_path = self.root / "jobs" / f"{state.id}.state.json"
        base = dict(state.counts) if resumed else {}
        last = 0.0

        def publish(counts: ReplayCounts, force: bool = False) -> None:
            nonlocal last
            now = time.monotonic()
            if not force and now - last < _PROGRESS_EVERY_S:
                return
            last = now
            current = counts.as_dict()
            if base:  # rows, start: of the first run; the rest adds up over the runs
                merged = dict(base)
                for key in ("read", "accepted", "duplicates", "rejected"):
                    merged[key] = base.get(key, 0) + current[key]
                current = merged
            state.counts, state.updated = current, time.time()
            state.ready = ctx.pipeline.ready.is_set()
            _write_json(state_path, asdict(state))

        job_ctx = SourceContext(ctx.pipeline, ctx.store, ctx.metrics, stop, ctx.max_fetch_bytes)
        # A resumed job continues from its checkpoint even when that is the end of the file.
        source = replay.Source(
            cfg,
            self.batch_size,
            rerun_finished=not resumed,
            shift_to_now=bool(options.get("shift_to_now")),
            on_progress=publish,
        )
        watcher = threading.Thread(target=self._watch, args=(ctx, state.id, stop), daemon=True)
        watcher.start()
        try:
            source.run(job_ctx)
        except Exception as exc:  # a bug in one job must not take the worker down
            log.exception("spool: job %s crashed", state.id)
            source.error = source.error or f"{type(exc).__name__}: {exc}"
        finally:
            cancelled = (self.root / "jobs" / f"{state.id}.cancel").exists()
            if source.error:
                state.state, state.error = "failed", source.error
            elif source.done:
                state.state = "done"
            else:
                state.state = "cancelled" if cancelled else "interrupted"
            publish(source.counts, force=True)
            stop.set()
            with self._lock:
                self.active.pop(state.id, None)
            log.info("spool: replay job %s %s: %s", state.id, state.state, state.counts)

    def _watch(self, ctx: SourceContext, job_id: str, stop: threading.Event) -> None:
        """Stop the job on the worker's shutdown or the CLI's cancel request."""
        cancel_path = self.root / "jobs" / f"{job_id}.cancel"
        while not stop.is_set():
            if ctx.stopping.is_set() or cancel_path.exists():
                stop.set()
                return
            stop.wait(self.poll_s)
