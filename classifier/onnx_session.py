"""ONNX Runtime sessions for CPU serving: one intra-op pool of exactly the threads this worker was given."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one batch at a time per worker: parallelism is inside each op
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unfused shapes are noise in the worker's JSON log
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
