"""The background trainer: the stack's `trainer` part trains the transformer recipe while the quick model serves.

It runs at low priority (nice 19, ``settings.trainer_threads`` torch threads) so live classification keeps up,
trains to convergence (early stopping on the early-stopping split; no wall-clock limit), checkpoints every
``checkpoint_every_steps`` steps, and on a restart - crash, kill, `finpulse down` - resumes from the last
checkpoint. Once done it shadow-evaluates the new model against the serving one (classifier/shadow.py) and
promotes it only when it scores better. One job per (recipe, data): a finished job is not trained again.

Progress - state, step, total, ETA, latest and best validation score - is one small JSON file,
``<data_dir>/trainer/progress.json``, read by `finpulse status` and the dashboard's Pipeline health page.

    finpulse trainer            # what `finpulse up` runs as its `trainer` part
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finpulse.settings import Settings
from finpulse.stack.supervisor import ServiceSpec, pid_alive

log = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"
NO_DATA_POLL_S = 30.0


def trainer_dir(settings: Settings) -> Path:
    return settings.data_dir / "trainer"


def progress_path(settings: Settings) -> Path:
    return trainer_dir(settings) / PROGRESS_FILE


def read_progress(settings: Settings) -> dict[str, Any] | None:
    try:
        return json.loads(progress_path(settings).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def write_progress(settings: Settings, progress: dict[str, Any]) -> None:
    path = progress_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{PROGRESS_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps({**progress, "pid": os.getpid(), "updated_at": time.time()}, indent=2), "utf-8")
    os.replace(tmp, path)


def job_key(args: Any, datasets: dict[str, Any]) -> str:
    """The job's identity: the recipe and the exact data files (by hash). Same key = same model."""
    files = {name: info.get("sha256") for name, info in sorted(datasets.items())}
    raw = json.dumps({"args": args.to_dict(), "data": files}, sort_keys=True)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:12]


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def summary(progress: dict[str, Any] | None) -> str:
    """One line for `finpulse status` and the dashboard."""
    if not progress:
        return "no training started"
    state = progress.get("state", "?")
    prefix = (
        f"retraining on {progress.get('corrections_used')} corrections: "
        if progress.get("trigger") == "corrections" and state == "training"
        else ""
    )
    return prefix + _state_line(progress, state) + _corrections_line(progress.get("corrections"))


def _corrections_line(corrections: Any) -> str:
    """`; corrections 12/50 new since ...` - how close the next corrections retrain is."""
    if not isinstance(corrections, dict):
        return ""
    if "new" not in corrections:
        return f"; corrections: {corrections.get('note')}" if corrections.get("note") else ""
    since = corrections.get("since") or "the start"
    return f"; corrections: {corrections['new']}/{corrections['needed']} new since {since} (retrain at the latter)"


def _state_line(progress: dict[str, Any], state: str) -> str:
    if state == "training" and not progress.get("total"):
        return "training: loading the data and the base model"
    if state == "training":
        step, total = progress.get("step", 0), progress.get("total") or 0
        pct = f" ({100 * step / total:.0f}%)" if total else ""
        score = progress.get("score")
        best = progress.get("best_score")
        return (
            f"training step {step}/{total}{pct}, ETA {format_eta(progress.get('eta_s'))} (at most; early stopping "
            f"may end it sooner), validation score {'-' if score is None else f'{score:.4f}'}"
            + ("" if best is None else f" (best {best:.4f} @ step {progress.get('best_step')})")
        )
    message = progress.get("message") or ""
    return f"{state}" + (f": {message}" if message else "")


# --- the job ---------------------------------------------------------------------------------------------------
def _lower_priority(settings: Settings) -> None:
    with contextlib.suppress(OSError):
        os.nice(max(0, settings.trainer_nice - os.nice(0)))


def _recipe(settings: Settings, sets: list[str], languages: list[str]) -> Any:
    from classifier.config import load_recipe

    args = load_recipe(settings.trainer_recipe)
    # All labeled sets found, in the quick model's order: the two models share one split (see quick_recipe).
    return args.replace(datasets=sets, languages=languages, threads=settings.trainer_threads)


def run(settings: Settings, *, stop: Any = None, idle: bool = True, store: Any = None) -> dict[str, Any]:
    """Train (or resume) the job for the current recipe and data, then shadow-promote; returns the result.

    Once that job is done, a corrections retrain follows when ``settings.correction_retrain_after`` corrections
    arrived since the serving model (or the last retrain) was trained (``store``: the corrections store; None
    opens ClickHouse when it answers). ``stop`` is a callable returning True when the process should checkpoint
    and exit. With ``idle`` False the call returns when there is nothing to do (tests); the service idles
    instead, so the supervisor keeps it.
    """
    from classifier.data import available_builtin, load_datasets
    from classifier.quick import frame_languages

    should_stop = stop or (lambda: False)
    while True:
        sets = available_builtin(settings.shared_data_dir)
        if sets:
            break
        write_progress(settings, {"state": "no_data", "message": "no labeled data; see `finpulse up`'s log"})
        if not idle:
            return {"state": "no_data"}
        if _sleep(NO_DATA_POLL_S, should_stop):
            return {"state": "stopped"}
    # The quick entity model first (tens of seconds, once): off `finpulse up`'s path to first labels, at this
    # part's low priority; never fatal for the transformer's training.
    from classifier.entity.bootstrap import ensure_entity_model

    ensure_entity_model(settings, echo=log.info)
    frame, prints = load_datasets(sets, settings.shared_data_dir)
    args = _recipe(settings, sets, sorted(set(frame_languages(frame))))
    key = job_key(args, prints)
    result_file = trainer_dir(settings) / "jobs" / key / RESULT_FILE
    if result_file.is_file():
        result = json.loads(result_file.read_text(encoding="utf-8"))
        write_progress(settings, {"state": "done", "job": key, **_brief(result)})
    else:
        # A name fixed by the job (not the clock), so that a restarted process resumes the same run.
        _mark_trained(settings)
        result = _train_and_shadow(settings, args, key, _job_name(args, key), should_stop)
        if result.get("state") != "done":
            return result
    return _retrain_on_corrections(settings, args, key, result, should_stop, store)


def _job_name(args: Any, key: str) -> str:
    return f"finpulse-{Path(args.base_model.rstrip('/')).name.lower().replace('_', '-')}-{key}"


def _train_and_shadow(
    settings: Settings,
    args: Any,
    key: str,
    name: str,
    should_stop: Any,
    *,
    corrections: list[Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or resume) one job, shadow-promote its model and record the result in the job's folder."""
    from classifier.registry import Registry, RegistryError
    from classifier.shadow import shadow_promote
    from classifier.train import TrainingInterrupted, train

    extra = extra or {}
    job = trainer_dir(settings) / "jobs" / key
    result_file = job / RESULT_FILE
    registry = Registry.from_settings(settings)
    started, first_step = time.monotonic(), None
    last_write = 0.0

    def on_progress(p: dict[str, Any]) -> None:
        nonlocal first_step, last_write
        if first_step is None:
            first_step = p["step"] - 1
        done = p["step"] - first_step
        rate = (time.monotonic() - started) / done if done > 0 else None
        now = time.monotonic()
        # The ETA is for people only; throttled writes keep the file cheap. No training decision reads either.
        if now - last_write >= 2.0 or p["step"] >= p["total"] or p["score"] != getattr(on_progress, "score", None):
            on_progress.score = p["score"]  # type: ignore[attr-defined]
            eta = rate * (p["total"] - p["step"]) if rate is not None else None
            write_progress(settings, {"state": "training", "job": key, "model": name, **extra, **p, "eta_s": eta})
            last_write = now

    try:
        registry.get(name)  # trained before a crash during the shadow evaluation: do not train again
    except RegistryError:
        write_progress(settings, {"state": "training", "job": key, "model": name, **extra, "step": 0, "total": None})
        try:
            train(
                args,
                settings,
                name=name,
                progress=False,
                device=settings.model_device,  # auto: a GPU when there is one, else the CPU at low priority
                checkpoint_dir=job,
                on_progress=on_progress,
                should_stop=should_stop,
                corrections=corrections,
            )
        except TrainingInterrupted as exc:
            write_progress(settings, {"state": "paused", "job": key, "message": str(exc)})
            return {"state": "paused"}
    write_progress(settings, {"state": "evaluating", "job": key, "model": name, "message": "shadow evaluation"})
    decision = shadow_promote(settings, name)
    result = {"state": "done", "job": key, "model": name, **extra, **decision}
    job.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    with contextlib.suppress(FileNotFoundError):
        (job / "checkpoint.pt").unlink()  # the model is in the registry now; the checkpoint is 2x its size
    write_progress(settings, {"state": "done", **_brief(result)})
    return result


# --- the corrections retrain ------------------------------------------------------------------------------------
CORRECTIONS_STATE_FILE = "corrections.json"
SNAPSHOT_FILE = "corrections.jsonl"


def _corrections_state(settings: Settings) -> dict[str, Any]:
    try:
        return json.loads((trainer_dir(settings) / CORRECTIONS_STATE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _save_corrections_state(settings: Settings, **fields: Any) -> None:
    path = trainer_dir(settings) / CORRECTIONS_STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{CORRECTIONS_STATE_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps({**_corrections_state(settings), **fields}, indent=2), "utf-8")
    os.replace(tmp, path)


def _mark_trained(settings: Settings, at: datetime | None = None) -> None:
    """Corrections made from now on count towards the next retrain (this run reads the ones before)."""
    _save_corrections_state(settings, last_trained_at=(at or datetime.now(UTC)).isoformat())


def corrections_due(settings: Settings, store: Any) -> dict[str, Any]:
    """New corrections since the serving model (or the last background training) was trained, and whether that
    reaches ``settings.correction_retrain_after``."""
    from classifier.registry import Registry

    marks = []
    serving = Registry.from_settings(settings).promoted()
    if serving is not None and serving.kind != "none":
        marks.append(datetime.fromisoformat(serving.created_at))
    last = _corrections_state(settings).get("last_trained_at")
    if last:
        marks.append(datetime.fromisoformat(last))
    since = max((m if m.tzinfo else m.replace(tzinfo=UTC) for m in marks), default=None)
    new = int(store.count(since=since))
    needed = settings.correction_retrain_after
    return {"new": new, "needed": needed, "since": since.isoformat() if since else None, "due": new >= needed}


def _retrain_on_corrections(
    settings: Settings, args: Any, base_key: str, result: dict[str, Any], should_stop: Any, store: Any
) -> dict[str, Any]:
    """Retrain on the current corrections when enough are new (or resume a retrain a restart interrupted)."""
    from classifier import corrections as corrmod

    note = "corrections from the given store"
    if store is None:
        store, note = corrmod.open_store(settings)
    pending = _corrections_state(settings).get("pending")
    if store is None and not pending:
        write_progress(settings, {**(read_progress(settings) or {}), "corrections": {"note": note}})
        return result
    if pending and (trainer_dir(settings) / "jobs" / pending / SNAPSHOT_FILE).is_file():
        key = str(pending)  # resume the same job on the same corrections
        corrections = _read_snapshot(trainer_dir(settings) / "jobs" / key / SNAPSHOT_FILE)
    else:
        try:
            due = corrections_due(settings, store)
        except Exception as exc:  # e.g. the corrections table not migrated yet: the serving model stays
            log.warning("counting corrections failed", exc_info=True)
            due = {"note": f"counting corrections failed: {type(exc).__name__}: {exc}"}
        write_progress(settings, {**(read_progress(settings) or {}), "corrections": due})
        if not due.get("due"):
            return result
        fetched_at = datetime.now(UTC)
        corrections = list(store.latest())
        key = f"{base_key}-c{corrmod.digest(corrections)}"
        job = trainer_dir(settings) / "jobs" / key
        job.mkdir(parents=True, exist_ok=True)
        _write_snapshot(job / SNAPSHOT_FILE, corrections)
        _save_corrections_state(settings, pending=key)
        _mark_trained(settings, fetched_at)
        log.info("retraining on corrections", extra={"job": key, "corrections": len(corrections), **due})
    extra = {"trigger": "corrections", "corrections_used": len(corrections)}
    retrained = _train_and_shadow(
        settings, args, key, _job_name(args, key), should_stop, corrections=corrections, extra=extra
    )
    if retrained.get("state") == "done":
        _save_corrections_state(settings, pending=None)
    return retrained


def _write_snapshot(path: Path, corrections: list[Any]) -> None:
    """The corrections a retrain job trains on, so that a restarted trainer resumes on the same set."""
    from dataclasses import fields

    from warehouse.queries.corrections import Correction

    names = [f.name for f in fields(Correction)]
    with open(path, "w", encoding="utf-8") as fh:
        for c in corrections:
            row = {k: getattr(c, k, "") for k in names}
            row["corrected_at"] = c.corrected_at.isoformat()
            fh.write(json.dumps(row) + "\n")


def _read_snapshot(path: Path) -> list[Any]:
    from types import SimpleNamespace

    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            row["corrected_at"] = datetime.fromisoformat(row["corrected_at"])
            out.append(SimpleNamespace(**row))
    return out


def poll_corrections(settings: Settings, stop: Any = None, store: Any = None) -> dict[str, Any] | None:
    """The idle trainer's periodic check: run the retrain when enough corrections arrived; None otherwise."""
    from classifier import corrections as corrmod

    if store is None:
        store, _ = corrmod.open_store(settings)
        if store is None:
            return None
    try:
        due = corrections_due(settings, store)
    except Exception:
        log.warning("counting corrections failed", exc_info=True)
        return None
    write_progress(settings, {**(read_progress(settings) or {}), "corrections": due})
    if not due["due"]:
        return None
    return run(settings, stop=stop, idle=False, store=store)


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    promoted = result.get("promoted")
    verdict = "promoted" if promoted else f"not promoted, {result.get('serving')} keeps serving"
    return {
        "job": result.get("job"),
        "model": result.get("model"),
        "promoted": promoted,
        "candidate_score": result.get("candidate_score"),
        "serving_score": result.get("serving_score"),
        "message": ("corrections retrain: " if result.get("trigger") == "corrections" else "")
        + f"{result.get('model')} {verdict} ({result.get('reason')})",
    }


def _sleep(seconds: float, should_stop: Any) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if should_stop():
            return True
        time.sleep(0.5)
    return False


def main() -> int:
    from finpulse.logs import setup_logging
    from finpulse.settings import load_settings

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format, service="trainer")
    stopping = {"now": False}

    def handle(*_: Any) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    _lower_priority(settings)
    write_progress(settings, {**(read_progress(settings) or {}), "state": "starting"})
    try:
        result = run(settings, stop=lambda: stopping["now"])
    except Exception as exc:
        # The serving model stays; the supervisor restarts this part with backoff and training resumes.
        log.exception("background training failed")
        write_progress(settings, {"state": "failed", "message": f"{type(exc).__name__}: {exc}; retrying"})
        return 1
    log.info("background trainer idle", extra={"state": result.get("state")})
    next_poll = time.monotonic() + settings.correction_poll_s
    while not stopping["now"] and result.get("state") != "paused":
        time.sleep(0.5)  # idle and healthy: nothing to train until enough corrections arrive (or a restart)
        if time.monotonic() >= next_poll:
            try:
                result = poll_corrections(settings, stop=lambda: stopping["now"]) or result
            except Exception as exc:  # the serving model stays; the next poll tries again
                log.exception("corrections retrain failed")
                write_progress(settings, {"state": "failed", "message": f"{type(exc).__name__}: {exc}; retrying"})
                return 1
            next_poll = time.monotonic() + settings.correction_poll_s
    return 0


# --- the stack part ------------------------------------------------------------------------------------------
def healthy(settings: Settings) -> bool:
    progress = read_progress(settings)
    return bool(progress) and pid_alive(int(progress.get("pid", -1))) and progress.get("state") != "failed"


def details(settings: Settings) -> dict[str, Any] | None:
    progress = read_progress(settings)
    return {"summary": summary(progress), **(progress or {})}


def service_spec(settings: Settings) -> ServiceSpec:
    from finpulse.stack.parts import finpulse_command

    return ServiceSpec(
        name="trainer",
        endpoint=str(progress_path(settings)),
        healthy=lambda: healthy(settings),
        argv=lambda: finpulse_command("trainer"),
        stop_timeout_s=60.0,  # SIGTERM saves a checkpoint first
        note=f"background transformer training ({settings.trainer_recipe} recipe, nice {settings.trainer_nice}, "
        f"{settings.trainer_threads} thread(s))",
        details=lambda: details(settings),
    )


def register(app: Any, bench_app: Any) -> None:
    def trainer() -> None:
        """Train the transformer recipe in the background (low priority, resumable) and shadow-promote it."""
        raise SystemExit(main())

    app.command("trainer")(trainer)
