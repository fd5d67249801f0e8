"""The background trainer: the stack's `trainer` part trains the transformer recipe while the quick model serves.

It runs at low priority (nice 19, ``settings.trainer_threads`` torch threads) so live classification keeps up,
trains to convergence (early stopping on the early-stopping split; no wall-clock limit), checkpoints every
``checkpoint_every_steps`` steps, and on a restart - crash, kill, `finpulse down` - resumes from the last
checkpoint. Once done it shadow-evaluates the new model against the serving one (classifier/shadow.py) and
promotes it only when it scores better. One job per (recipe, data): a finished job is not trained again.

Progress - state, step, total, ETA, latest and best validation score - is one small JSON file,
``<data_dir>/trainer/progress.json``, read by `finpulse status` and the dashboard's Pipeline health page.

    finpulse trainer            # what `finpulse up` runs as its `trainer` part (also: python -m classifier.background)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import time
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


def run(settings: Settings, *, stop: Any = None, idle: bool = True) -> dict[str, Any]:
    """Train (or resume) the job for the current recipe and data, then shadow-promote; returns the result.

    ``stop`` is a callable returning True when the process should checkpoint and exit. With ``idle`` False the
    call returns when there is nothing to do (tests); the service idles instead, so the supervisor keeps it.
    """
    from classifier.data import available_builtin, load_datasets
    from classifier.quick import frame_languages
    from classifier.registry import Registry, RegistryError
    from classifier.shadow import shadow_promote
    from classifier.train import TrainingInterrupted, train

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
    job = trainer_dir(settings) / "jobs" / key
    result_file = job / RESULT_FILE
    if result_file.is_file():
        result = json.loads(result_file.read_text(encoding="utf-8"))
        write_progress(settings, {"state": "done", "job": key, **_brief(result)})
        return result
    # A name fixed by the job (not the clock), so that a restarted process resumes the same run.
    name = f"finpulse-{Path(args.base_model.rstrip('/')).name.lower().replace('_', '-')}-{key}"
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
            write_progress(settings, {"state": "training", "job": key, "model": name, **p, "eta_s": eta})
            last_write = now

    try:
        registry.get(name)  # trained before a crash during the shadow evaluation: do not train again
    except RegistryError:
        write_progress(settings, {"state": "training", "job": key, "model": name, "step": 0, "total": None})
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
            )
        except TrainingInterrupted as exc:
            write_progress(settings, {"state": "paused", "job": key, "message": str(exc)})
            return {"state": "paused"}
    write_progress(settings, {"state": "evaluating", "job": key, "model": name, "message": "shadow evaluation"})
    decision = shadow_promote(settings, name)
    result = {"state": "done", "job": key, "model": name, **decision}
    job.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    with contextlib.suppress(FileNotFoundError):
        (job / "checkpoint.pt").unlink()  # the model is in the registry now; the checkpoint is 2x its size
    write_progress(settings, {"state": "done", **_brief(result)})
    return result


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    promoted = result.get("promoted")
    verdict = "promoted" if promoted else f"not promoted, {result.get('serving')} keeps serving"
    return {
        "job": result.get("job"),
        "model": result.get("model"),
        "promoted": promoted,
        "candidate_score": result.get("candidate_score"),
        "serving_score": result.get("serving_score"),
        "message": f"{result.get('model')} {verdict} ({result.get('reason')})",
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
    while not stopping["now"] and result.get("state") != "paused":
        time.sleep(0.5)  # idle and healthy: nothing to train until the recipe or the data change (restart)
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


if __name__ == "__main__":
    sys.exit(main())
