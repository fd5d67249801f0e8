"""The ONNX export and the precision guard (bf16 / int8 / fp32) of a model directory, run in a child process.

A stream worker that serves ONNX Runtime needs neither torch nor the weights in torch form. Exporting them
(loading the torch model, tracing, serializing, quantizing) peaks at several GiB for multilingual-e5-small, and a
process's peak RSS (VmHWM) never comes down again. So a worker that finds no cached export (or no guard record)
runs ``python -m classifier.onnx_prepare`` and then opens the cached files; the peak stays in the child, which
exits. Concurrent workers are serialised by the export's flock, so the first one exports and the others wait.

The child prints one JSON line: ``{"directory": ..., "fingerprint": ..., "guard": {...} | null}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from classifier import onnx_guard
from classifier.onnx_export import ExportError, OnnxArtifacts, locate

log = logging.getLogger(__name__)

TRAINING_ARGS_FILE = "training_args.json"  # the recipe the guard re-creates the validation split from
PREPARE_TIMEOUT_S = 3600.0  # a 2-core machine under load exports e5-small in minutes; hours mean a hang


def _fresh(record: dict[str, Any] | None, artifacts: OnnxArtifacts) -> bool:
    """Measured for these weights, in the current format, on every candidate this machine could serve."""
    return onnx_guard.fresh(record, artifacts.fingerprint, onnx_guard.candidates_here())


def needs_work(artifacts: OnnxArtifacts, *, guard: bool, int8: bool = True) -> bool:
    """True when the export is missing, or the guard is wanted and has no record for these weights."""
    if not artifacts.fp32.is_file() or (int8 and not artifacts.int8.is_file()):
        return True
    return guard and not _fresh(artifacts.read_guard(), artifacts)


def prepare(
    model_dir: Path,
    *,
    fallback_root: Path | None = None,
    guard: bool = True,
    guard_data_root: Path | None = None,
    threads: int = 1,
    timeout: float = PREPARE_TIMEOUT_S,
) -> tuple[OnnxArtifacts, dict[str, Any] | None]:
    """The cached export of ``model_dir`` and its guard record, exporting and guarding in a child when missing.

    ``guard`` False: the precision was forced, no guard runs; the record is whatever is cached. A guard that cannot
    run (no ``guard_data_root``, no validation rows) gives ``{"decision": "fp32", "reason": ...}``, not cached (the
    data may be there next time), as in ``onnx_guard.choose_precision``.
    """
    artifacts = locate(model_dir, fallback_root)
    no_data = guard_data_root is None
    # No recipe to re-create the validation split from (a hand-made model folder): no child started for nothing.
    run_guard = guard and not no_data and (Path(model_dir) / TRAINING_ARGS_FILE).is_file()
    if needs_work(artifacts, guard=run_guard):
        artifacts, record = _run_child(
            Path(model_dir), artifacts, fallback_root, guard_data_root if run_guard else None, threads, timeout
        )
    else:
        record = artifacts.read_guard()
    if guard and not _fresh(record, artifacts):
        if (record or {}).get("reason"):
            reason = record["reason"]  # type: ignore[index]
        elif no_data:
            reason = "no shared data dir: the validation split cannot be re-created"
        else:
            reason = f"no {TRAINING_ARGS_FILE} in {Path(model_dir).name}: the validation split cannot be re-created"
        log.warning("precision guard cannot run (%s): serving fp32", reason)
        record = {"decision": "fp32", "reason": reason}
    return artifacts, record


STEPS = ("export", "quantize", "guard")


def _run_child(
    model_dir: Path,
    artifacts: OnnxArtifacts,
    fallback_root: Path | None,
    guard_data_root: Path | None,
    threads: int,
    timeout: float,
) -> tuple[OnnxArtifacts, dict[str, Any] | None]:
    """Each missing step in its own process, one after the other: the torch export's peak and the quantizer's
    peak (it holds the fp32 graph twice) are never held together, nor next to the ~850 MiB that torch and
    transformers cost to import (the quantizer and ONNX Runtime need neither)."""
    steps = []
    if not artifacts.fp32.is_file():
        steps.append("export")
    if not artifacts.int8.is_file():
        steps.append("quantize")
    if guard_data_root is not None and not _fresh(artifacts.read_guard(), artifacts):
        steps.append("guard")
    answer: dict[str, Any] = {}
    for step in steps or ["export"]:
        answer = _run_step(step, model_dir, fallback_root, guard_data_root, threads, timeout)
    done = OnnxArtifacts(Path(answer["directory"]), answer["fingerprint"])
    if done.fingerprint != artifacts.fingerprint or not done.fp32.is_file():
        raise ExportError(f"ONNX export of {model_dir}: the weights changed while exporting; load again")
    return done, answer.get("guard")


def _run_step(
    step: str, model_dir: Path, fallback_root: Path | None, guard_data_root: Path | None, threads: int, timeout: float
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "classifier.onnx_prepare", step, str(model_dir), "--threads", str(threads)]
    if fallback_root is not None:
        cmd += ["--fallback-root", str(fallback_root)]
    if guard_data_root is not None:
        cmd += ["--guard-data", str(guard_data_root)]
    log.info("ONNX %s of %s in a child process", step, model_dir.name)
    try:
        # stderr is inherited: the child's log lines land in this process's log.
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout, env=os.environ.copy())
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"ONNX {step} of {model_dir} took longer than {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise ExportError(f"ONNX {step} of {model_dir} failed (exit {proc.returncode}); see the log above")
    try:
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError) as exc:
        raise ExportError(f"ONNX {step} of {model_dir}: unreadable answer {proc.stdout[-200:]!r}") from exc


def run_step(
    step: str, model_dir: Path, fallback_root: Path | None, guard_data: Path | None, threads: int
) -> dict[str, Any]:
    """One step, in this process: what a child runs (tests run the steps in their own process)."""
    artifacts = locate(model_dir, fallback_root)
    outcome: dict[str, Any] | None = None
    if step == "export":
        from classifier.model import load_tokenizer
        from classifier.onnx_export import ensure_exported

        ensure_exported(model_dir, load_tokenizer(model_dir), fallback_root=fallback_root, int8=False)
    elif step == "quantize":
        from classifier.onnx_export import file_lock, quantize_int8

        with file_lock(artifacts.directory / ".lock"):
            if not artifacts.int8.is_file():
                log.info("quantizing %s to int8", model_dir.name)
                quantize_int8(artifacts.fp32, artifacts.int8)
    elif step == "guard":
        from classifier.engine import ClassifierEngine
        from classifier.onnx_guard import choose_precision

        # An fp32 engine over the cached export (this load finds it: no recursion), guarded with the engine's own
        # tokenization and batching, exactly as it will serve.
        engine = ClassifierEngine.load(
            model_dir, device="cpu", backend="onnx", precision="fp32", threads=threads, cache_root=fallback_root
        )
        _, outcome = choose_precision(engine, artifacts, "auto", guard_data)
    else:
        raise ValueError(f"unknown step {step!r} (known: {', '.join(STEPS)})")
    record = artifacts.read_guard()
    if step == "guard" and not _fresh(record, artifacts):
        record = outcome  # the guard could not run: its reason, not cached
    return {"directory": str(artifacts.directory), "fingerprint": artifacts.fingerprint, "guard": record}


def export_and_guard(
    model_dir: Path, fallback_root: Path | None, guard_data: Path | None, threads: int
) -> dict[str, Any]:
    """Every step in this process (for tests: a faked guard measurement only works in-process)."""
    answer: dict[str, Any] = {}
    for step in STEPS if guard_data is not None else STEPS[:2]:
        answer = run_step(step, model_dir, fallback_root, guard_data, threads)
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classifier.onnx_prepare", description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--fallback-root", type=Path, default=None)
    parser.add_argument("--guard-data", type=Path, default=None, help="Shared data dir: the guard's validation rows.")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        answer = run_step(args.step, args.model_dir, args.fallback_root, args.guard_data, max(1, args.threads))
    except Exception as exc:  # the parent turns a non-zero exit into ExportError; say why here
        log.error("ONNX %s of %s failed: %s: %s", args.step, args.model_dir, type(exc).__name__, exc)
        return 1
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
