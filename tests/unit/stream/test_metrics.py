"""The stream worker's memory gauges: resident and peak resident memory, read from /proc at scrape time."""

from __future__ import annotations

import math
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from stream.metrics import StreamMetrics, memory_kib


def _samples(metrics: StreamMetrics) -> dict[str, float]:
    families = text_string_to_metric_families(metrics.exposition().decode())
    return {s.name: s.value for f in families for s in f.samples}


def test_rss_and_peak_rss_are_exported() -> None:
    values = _samples(StreamMetrics())
    rss, peak = values["finpulse_stream_rss_bytes"], values["finpulse_stream_peak_rss_bytes"]
    assert 10 * 2**20 < rss <= peak  # a Python process holds more than 10 MiB; the peak is never below now
    held = bytearray(64 * 2**20)  # touched memory shows in the next scrape
    held[::4096] = b"x" * len(held[::4096])
    after = _samples(StreamMetrics())
    assert after["finpulse_stream_rss_bytes"] >= rss + 60 * 2**20
    assert after["finpulse_stream_peak_rss_bytes"] >= after["finpulse_stream_rss_bytes"]
    del held


def test_memory_kib_reads_a_status_file_and_says_nan_otherwise(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  123456 kB\nVmRSS:\t   65432 kB\n", encoding="ascii")
    assert (memory_kib("VmHWM", status), memory_kib("VmRSS", status)) == (123456.0, 65432.0)
    assert math.isnan(memory_kib("VmSwap", status))
    assert math.isnan(memory_kib("VmRSS", tmp_path / "missing"))
    status.write_text("VmRSS:\tgarbage\n", encoding="ascii")
    assert math.isnan(memory_kib("VmRSS", status))
