"""Device and numeric-precision choices, decided once from what the machine can do."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported only where a torch device is really needed: the ONNX path never imports it
    import torch

# Device nodes of the NVIDIA (and ROCm) drivers: with none of them, torch cannot see a GPU either.
_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/gpus", "/dev/kfd")


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU executes bf16 matmuls natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def gpu_may_be_present() -> bool:
    """False when no GPU driver is present; decided without importing torch (~1.5 s and ~400 MB of RSS)."""
    return any(Path(node).exists() for node in _GPU_NODES)


def device_type(device: str) -> str:
    """cpu or cuda for a device setting (auto, cpu, cuda, cuda:N); torch is imported only to look for a GPU."""
    if device == "cpu" or (device == "auto" and not gpu_may_be_present()):
        return "cpu"
    return resolve_device(device).type


def resolve_device(device: str) -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    return torch.device(device)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for a precision setting; None means plain fp32."""
    import torch

    if precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def affinity_cores() -> int:
    """The cores this process may run on (its CPU affinity: taskset, cgroup cpusets), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def threads_for_worker(cores: int, workers: int, index: int) -> int:
    """Worker ``index`` of ``workers`` on one machine gets its share of ``cores``; the first ``cores % workers``
    workers take one more, and every worker gets at least one (oversubscribing beats idling a worker)."""
    if cores < 1 or workers < 1 or index < 0:
        raise ValueError(f"need cores >= 1, workers >= 1, index >= 0 (got {cores}, {workers}, {index})")
    index %= workers
    return max(1, cores // workers + (1 if index < cores % workers else 0))


def cpu_threads(requested: int | None) -> int:
    """Intra-op threads: as asked (settings.model_threads), else every core in this process's affinity.

    No load-average guess: the load average counts this process's own threads and every short job on the box, so
    it chose 1 thread on 2 cores whenever the stack ran. Several workers on one machine split the cores with
    ``threads_for_worker`` and pass the result as ``requested``.
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1, got {requested}")
        return requested
    return affinity_cores()
