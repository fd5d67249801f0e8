"""Export a MultiTaskClassifier to ONNX (both heads' logits, dynamic batch and sequence axes), quantize it to int8,
and cache both in the model directory under a fingerprint of the weights, so a stale export is never served.

Layout: ``<model_dir>/onnx/<fingerprint[:16]>/{model.fp32.onnx, model.int8.onnx, guard.json}``. Files are written
under a temporary name and renamed into place while holding an flock, so concurrent workers export once and a
reader never sees half a file. A model directory that is not writable falls back to ``fallback_root``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch only where an export really runs: a worker that finds the cache never imports it
    from classifier.model import MultiTaskClassifier

log = logging.getLogger(__name__)

# classifier.model's WEIGHTS_FILE and HEADS_FILE (a unit test keeps them equal), named here without importing torch.
WEIGHTS_FILE = "model.safetensors"
HEADS_FILE = "heads.json"

# Bump when the export graph or quantization recipe changes: old caches then no longer match.
EXPORT_FORMAT = 1
OPSET = 17
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("topic_logits", "sentiment_logits")
FP32_FILE = "model.fp32.onnx"
INT8_FILE = "model.int8.onnx"
GUARD_FILE = "guard.json"


class ExportError(RuntimeError):
    """The model could not be exported or quantized."""


@dataclass(frozen=True)
class OnnxArtifacts:
    directory: Path
    fingerprint: str

    @property
    def fp32(self) -> Path:
        return self.directory / FP32_FILE

    @property
    def int8(self) -> Path:
        return self.directory / INT8_FILE

    @property
    def guard(self) -> Path:
        return self.directory / GUARD_FILE

    def read_guard(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.guard.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def weights_fingerprint(model_dir: Path) -> str:
    """sha256 of the weights, encoder config and heads, plus the export format."""
    digest = hashlib.sha256(f"finpulse-onnx-{EXPORT_FORMAT}-opset{OPSET}".encode())
    for name in (WEIGHTS_FILE, "config.json", HEADS_FILE):
        digest.update(name.encode())
        with open(model_dir / name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def locate(model_dir: Path, fallback_root: Path | None = None) -> OnnxArtifacts:
    """Where the export of ``model_dir``'s current weights is (or will be) cached; exports nothing."""
    model_dir = Path(model_dir)
    fingerprint = weights_fingerprint(model_dir)
    return OnnxArtifacts(_writable_dir(model_dir, fingerprint, fallback_root), fingerprint)


def _writable_dir(model_dir: Path, fingerprint: str, fallback_root: Path | None) -> Path:
    candidates = [model_dir / "onnx" / fingerprint[:16]]
    if fallback_root is not None:
        candidates.append(Path(fallback_root) / "onnx" / f"{model_dir.name}-{fingerprint[:16]}")
    for directory in candidates:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / f".probe.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return directory
        except OSError:
            continue
    raise ExportError(f"no writable place for the ONNX export of {model_dir} (tried {', '.join(map(str, candidates))})")


def export_onnx(model: MultiTaskClassifier, tokenizer: Any, path: Path) -> None:
    """Trace the fp32 model on a padded two-row batch; batch and sequence axes stay dynamic."""
    import torch

    model = model.eval().to("cpu", torch.float32)
    # Rows of different lengths, so padding and the attention mask are part of what is traced; any vocabulary.
    sample = tokenizer(
        ["Acme shares rise after strong quarterly results beat estimates", "Rates"],
        padding="longest",
        return_tensors="np",  # numpy: transformers' tokenizers and the torch-free RustTokenizer both answer it
        return_token_type_ids=False,
    )
    args = tuple(torch.from_numpy(sample[name].astype("int64")) for name in INPUTS)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUTS} | {name: {0: "batch"} for name in OUTPUTS}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # The tracer warns about shape checks it folds into constants; the parity tests cover other shapes.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                args,
                str(tmp),
                input_names=list(INPUTS),
                output_names=list(OUTPUTS),
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"ONNX export failed: {exc}") from exc
    os.replace(tmp, path)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8: weights quantized once, activations per batch at run time (no calibration data needed)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        # Shape inference cannot type every intermediate of a traced encoder: those are fp32 activations.
        quantize_dynamic(
            src, tmp, weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}
        )
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"int8 quantization failed: {exc}") from exc
    os.replace(tmp, dst)


def ensure_exported(
    model_dir: Path,
    tokenizer: Any,
    model: MultiTaskClassifier | None = None,
    *,
    fallback_root: Path | None = None,
    int8: bool = True,
) -> OnnxArtifacts:
    """The cached fp32 (and int8) export of ``model_dir``'s current weights, exporting it first (in this process)
    if missing. ``classifier.onnx_prepare.prepare`` does the same in a child process."""
    model_dir = Path(model_dir)
    artifacts = locate(model_dir, fallback_root)
    if artifacts.fp32.is_file() and (artifacts.int8.is_file() or not int8):
        return artifacts
    with file_lock(artifacts.directory / ".lock"):
        if not artifacts.fp32.is_file():  # another worker may have finished it while this one waited
            log.info("exporting %s to ONNX (%s)", model_dir.name, artifacts.directory)
            if model is None:
                from classifier.model import MultiTaskClassifier

                model = MultiTaskClassifier.load(model_dir)
            export_onnx(model, tokenizer, artifacts.fp32)
        if int8 and not artifacts.int8.is_file():
            log.info("quantizing %s to int8", model_dir.name)
            quantize_int8(artifacts.fp32, artifacts.int8)
    return artifacts
