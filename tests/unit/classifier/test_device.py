"""Thread selection: the cores in the process's affinity, FINPULSE_MODEL_THREADS over it, split between workers."""

from __future__ import annotations

import os

import pytest

from classifier import device
from classifier.device import cpu_threads, threads_for_worker


def test_default_is_the_affinity_not_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))  # a busy box must not lower the choice
    assert device.affinity_cores() == 3
    assert cpu_threads(None) == 3


def test_setting_overrides_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert cpu_threads(7) == 7
    with pytest.raises(ValueError, match="threads must be >= 1"):
        cpu_threads(0)


@pytest.mark.parametrize(
    ("cores", "workers", "expected"),
    [(2, 1, [2]), (2, 2, [1, 1]), (8, 3, [3, 3, 2]), (2, 3, [1, 1, 1]), (16, 4, [4, 4, 4, 4])],
)
def test_threads_for_worker_splits_cores(cores: int, workers: int, expected: list[int]) -> None:
    got = [threads_for_worker(cores, workers, i) for i in range(workers)]
    assert got == expected
    assert sum(got) == max(cores, workers)


def test_threads_for_worker_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        threads_for_worker(0, 1, 0)
    with pytest.raises(ValueError):
        threads_for_worker(4, 0, 0)
    with pytest.raises(ValueError):
        threads_for_worker(4, 2, -1)
    assert threads_for_worker(4, 2, 3) == 2  # an index past the count wraps like the GPU assignment does


def test_stream_worker_gets_its_share(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from finpulse.settings import load_settings
    from stream.app import StreamWorker

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(5)))
    settings = load_settings(data_dir=tmp_path, model_device="cpu", stream_workers_per_host=2)
    assert StreamWorker(settings, index=1).settings.model_threads == 2
    assert StreamWorker(settings, index=0).settings.model_threads == 3
    pinned = load_settings(data_dir=tmp_path, model_device="cpu", stream_workers_per_host=2, model_threads=1)
    assert StreamWorker(pinned, index=0).settings.model_threads == 1
