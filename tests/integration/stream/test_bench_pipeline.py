"""`finpulse bench pipeline` on a tiny promoted model: a private local stack, English and Chinese documents, and
every figure of the report (throughput, latency, stage breakdown, the worker's memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finpulse.settings import load_settings
from stream.bench import format_report, run_pipeline_bench


def test_bench_pipeline_reports_throughput_latency_and_memory(stream_model: dict[str, Any], tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "fp", model_dir=stream_model["registry"], shared_data_dir=tmp_path / "no-data"
    )
    said: list[str] = []
    report = run_pipeline_bench(settings, docs=120, latency_docs=40, echo=said.append)
    assert report["model_version"] == stream_model["version"] and report["backend"] == "onnx"
    assert report["engine_alone_docs_per_s"] > 0 and report["pipeline_sustained_docs_per_s"] > 0
    assert report["pipeline_vs_engine"] == round(
        report["pipeline_sustained_docs_per_s"] / report["engine_alone_docs_per_s"], 3
    )
    assert report["throughput"]["docs"] == 120 and report["latency"]["docs"] == 40
    lat = report["latency"]
    assert 0 < lat["p50_s"] <= lat["p95_s"] <= lat["p99_s"] <= lat["max_s"]
    stages = report["throughput"]["where_the_time_goes"]["stages"]
    assert stages["inference"]["ms_per_batch"] > 0 and report["throughput"]["where_the_time_goes"]["batches"] > 0
    # The worker's own gauges: a real process of a few hundred MiB, its peak never below what it holds now.
    assert 50 < report["worker_rss_mib"] <= report["worker_peak_rss_mib"] < 64 * 1024
    assert report["zh_share"] > 0
    assert any("worker memory" in line for line in said)  # progress as it goes
    text = format_report(report)
    assert "pipeline sustained" in text and "worker memory" in text
