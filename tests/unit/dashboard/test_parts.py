"""Dashboard parts without a server: saved queries, login check, service spec, metrics parsing, charts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dashboard import auth, charts, pipeline, saved_queries
from dashboard.service import dashboard_healthy, service_spec, streamlit_command
from finpulse.settings import load_settings
from finpulse.stack.clickhouse.launch import free_port


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(data_dir=tmp_path, dashboard_port=free_port(), dashboard_user="risk", dashboard_password="pw")


def test_saved_queries_round_trip_and_validation(settings) -> None:
    assert saved_queries.load(settings) == {}
    saved_queries.save(settings, " Daily negatives ", "SELECT 1")
    assert saved_queries.save(settings, "Other", "SELECT 2") == {"Daily negatives": "SELECT 1", "Other": "SELECT 2"}
    assert json.loads(saved_queries.path(settings).read_text())["Other"] == "SELECT 2"
    assert saved_queries.delete(settings, "Other") == {"Daily negatives": "SELECT 1"}
    with pytest.raises(ValueError, match="name"):
        saved_queries.save(settings, "  ", "SELECT 1")
    with pytest.raises(ValueError, match="no SQL"):
        saved_queries.save(settings, "x", "  ")
    saved_queries.path(settings).write_text("{broken")
    assert saved_queries.load(settings) == {}


def test_login_needs_both_configured_values(settings) -> None:
    assert auth.login_required(settings)
    assert auth.check_credentials(settings, "risk", "pw")
    assert not auth.check_credentials(settings, "risk", "PW")
    assert not auth.check_credentials(settings, "other", "pw")
    open_settings = load_settings(dashboard_password="")
    assert not auth.login_required(open_settings)
    assert not auth.check_credentials(open_settings, "", "")  # no password configured: nothing to sign in to


def test_service_spec_runs_streamlit_on_the_configured_port(settings) -> None:
    argv = streamlit_command(settings)
    assert argv[1:4] == ["-m", "streamlit", "run"] and Path(argv[4]).name == "app.py" and Path(argv[4]).is_file()
    assert argv[argv.index("--server.port") + 1] == str(settings.dashboard_port)
    assert argv[argv.index("--server.headless") + 1] == "true"
    spec = service_spec(settings)
    assert spec.name == "dashboard" and spec.ports == (settings.dashboard_port,)
    assert spec.endpoint == f"http://127.0.0.1:{settings.dashboard_port}" and "login required" in spec.note
    # the supervisor runs `finpulse dashboard`, which execs that Streamlit argv (tests/unit/docker checks it)
    assert spec.argv is not None and spec.argv()[1:] == ["-m", "finpulse", "dashboard"]
    assert not spec.healthy() and not dashboard_healthy(settings)  # nothing listens on that port


def test_stack_finds_the_dashboard_part(settings) -> None:
    from finpulse.stack.services import service_specs

    specs = service_specs(settings.model_copy(update={"stack_services": "dashboard"}))
    assert [s.name for s in specs] == ["dashboard"]


def test_parse_metrics_keeps_stream_families() -> None:
    text = (
        "# TYPE finpulse_stream_consumer_lag_total gauge\nfinpulse_stream_consumer_lag_total 42.0\n"
        '# TYPE finpulse_stream_dlq counter\nfinpulse_stream_dlq_total{field="title"} 3.0\n'
        '# TYPE python_gc_objects_collected counter\npython_gc_objects_collected_total{generation="0"} 9.0\n'
    )
    rows = pipeline.parse_metrics(text).set_index("metric")
    assert rows.loc["finpulse_stream_consumer_lag_total", "value"] == 42.0
    assert rows.loc["finpulse_stream_dlq_total", "labels"] == "field=title"
    assert "python_gc_objects_collected_total" not in rows.index


def test_unreachable_kafka_and_metrics_degrade_to_notes(tmp_path: Path) -> None:
    dead = load_settings(data_dir=tmp_path, kafka_port=free_port(), stream_port=free_port())
    health = pipeline.kafka_health(dead)
    assert health.dlq_messages is None and health.lag.empty and "not reachable" in health.note
    frame, note = pipeline.stream_metrics(dead)
    assert frame.empty and "not reachable" in note


def _frame() -> pd.DataFrame:
    buckets = pd.date_range("2026-01-01", periods=4, freq="15min")
    return pd.DataFrame(
        {
            "bucket": list(buckets) * 2,
            "topic": ["macro"] * 4 + ["earnings"] * 4,
            "docs": [5, 6, 7, 8, 1, 2, 3, 4],
            "negative": [1, 2, 3, 4, 0, 1, 1, 2],
            "positive": [2, 2, 2, 2, 1, 0, 1, 1],
            "sentiment_index": [0.2, 0.0, -0.14, -0.25, 1.0, -0.5, 0.0, -0.25],
            "negative_share": [0.2, 0.33, 0.43, 0.5, 0.0, 0.5, 0.33, 0.5],
        }
    )


def test_charts_encode_what_their_titles_say() -> None:
    volume = charts.volume_by_topic(_frame()).to_dict()
    assert volume["mark"]["type"] == "area" and volume["encoding"]["color"]["field"] == "topic"
    index = charts.sentiment_index(_frame()).to_dict()
    assert [layer["mark"]["type"] for layer in index["layer"]] == ["line", "line", "rule"]
    assert index["layer"][0]["encoding"]["y"]["scale"]["domain"] == [-1, 1]
    heat = charts.topic_heatmap(_frame(), 15).to_dict()
    assert heat["mark"]["type"] == "rect" and heat["encoding"]["x2"]["field"] == "bucket_end"
    assert heat["params"][0]["name"] == "cell" and heat["encoding"]["color"]["field"] == "negative_share"
    assert charts.topic_heatmap(_frame(), 15, "docs").to_dict()["encoding"]["color"]["field"] == "docs"
    shift = pd.DataFrame(
        {"ticker": ["A", "B"], "negative_share_change": [0.2, None], "window_negative_share": [0.5, 0.4]}
    )
    bars = charts.ticker_shift(shift).to_dict()
    assert bars["params"][0]["name"] == "ticker"
    mix = charts.sentiment_mix(pd.DataFrame({"sentiment": ["negative", "negative", None]})).to_dict()
    assert mix["encoding"]["color"]["scale"]["range"][0] == "#d62728"


def test_cli_registers_the_dashboard_command() -> None:
    from typer.testing import CliRunner

    from finpulse.cli import app

    result = CliRunner().invoke(app, ["dashboard", "--help"])
    assert result.exit_code == 0 and "--port" in result.output
