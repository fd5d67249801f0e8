from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.stack import local_only
from warehouse.client import create_client
from warehouse.migrate import discover, migrate

from .conftest import Endpoint, start

# These test the local endpoint itself, which they start; external servers are not what they are about.
pytestmark = [pytest.mark.integration, local_only]


def _doc(doc_id: str, tickers: list[str], sentiment: str, minute: int) -> dict:
    ts = datetime(2026, 3, 2, 9, minute, 5, tzinfo=UTC)
    return {
        "id": doc_id,
        "source": "rss",
        "kind": "news",
        "lang": "en",
        "title": f"title {doc_id}",
        "body": "body",
        "url": None,
        "author": None,
        "published_at": ts,
        "ingested_at": ts,
        "tickers": tickers,
        "entities": [],
        "meta": "{}",
        "topic": "earnings",
        "topic_score": 0.9,
        "sentiment": sentiment,
        "sentiment_score": -0.5,
        "topic_probs": {"earnings": 0.9},
        "sentiment_probs": {"negative": 0.7},
        "model_version": "test-1",
        "classified_at": ts,
        "schema_version": 1,
    }


def _insert(client, docs: list[dict]) -> None:
    names = list(docs[0])
    client.insert("documents", [[d[n] for n in names] for d in docs], column_names=names)


def test_migrations_dedup_persistence_and_restart(tmp_path: Path) -> None:
    ep = start(tmp_path / "data")
    try:
        applied = migrate(ep.settings)
        assert applied[:3] == ["0001_documents", "0002_documents_minutely", "0003_alerts"]
        assert applied == [m.id for m in discover()]  # every migration, in file order
        assert migrate(ep.settings) == []  # idempotent
        client = create_client(ep.settings)
        docs = [
            _doc("a1", ["AAPL", "MSFT"], "negative", 1),
            _doc("a2", [], "negative", 1),
            _doc("a3", ["AAPL"], "positive", 2),
        ]
        _insert(client, docs)
        _insert(client, [docs[0]])  # redelivered: same id, a second insert
        assert client.command("SELECT count() FROM documents_latest") == 3
        assert client.command("SELECT uniqExact(id) FROM documents") == 3
        per_sentiment = dict(
            client.query(
                "SELECT sentiment, count() FROM documents_minutely_latest FINAL GROUP BY sentiment"
            ).result_rows
        )
        assert per_sentiment == {"negative": 2, "positive": 1}
        assert client.command("SELECT count() FROM documents_minutely_latest FINAL WHERE has(tickers, 'AAPL')") == 2
        assert client.command("SELECT sum(docs) FROM documents_minutely_counts WHERE ticker = 'MSFT'") == 1
        analyst = create_client(ep.settings, readonly=True)
        assert analyst.command("SELECT count() FROM documents_latest") == 3
        assert analyst.command("SELECT count() FROM documents_minutely_counts") > 0
        assert analyst.command("SELECT count() FROM alerts") == 0
        client.close()
        assert ep.stop() == 0  # SIGTERM: graceful, engine closed
        assert "ClickHouse endpoint stopped" in ep.log.read_text()

        ep = start(tmp_path / "data")  # same data dir: everything acknowledged is still there
        client = create_client(ep.settings)
        assert client.command("SELECT count() FROM documents_latest") == 3
        assert migrate(ep.settings) == []
    finally:
        if ep.process.poll() is None:
            ep.stop()


def _server(data_dir: Path, port: int) -> subprocess.CompletedProcess:
    env = {"FINPULSE_DATA_DIR": str(data_dir), "FINPULSE_CLICKHOUSE_PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "finpulse.stack.clickhouse.server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )


def test_port_in_use_and_locked_data_dir_give_one_clear_message(endpoint: Endpoint, tmp_path: Path) -> None:
    busy = _server(tmp_path / "other", endpoint.settings.clickhouse_port)
    assert busy.returncode == 2
    assert "already in use" in busy.stderr and "FINPULSE_CLICKHOUSE_PORT" in busy.stderr
    assert "Traceback" not in busy.stderr and len(busy.stderr.strip().splitlines()) == 1

    from finpulse.stack.clickhouse.launch import free_port

    locked = _server(endpoint.settings.data_dir, free_port())
    assert locked.returncode == 3
    assert "in use by another process" in locked.stderr and "Traceback" not in locked.stderr


def test_damaged_data_dir_gives_a_clear_message(tmp_path: Path) -> None:
    from finpulse.stack.clickhouse.launch import free_port

    (tmp_path / "clickhouse").write_text("not a directory")
    result = _server(tmp_path, free_port())
    assert result.returncode == 3
    assert "not a directory" in result.stderr and "Traceback" not in result.stderr


def test_sigterm_lets_an_in_flight_query_finish(tmp_path: Path) -> None:
    import threading
    import time

    import httpx

    ep = start(tmp_path / "data")
    answers: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: answers.append(
            httpx.post(ep.url, content=b"SELECT sleep(2), 'done'", auth=("default", "full-secret"), timeout=30)
        )
    )
    slow.start()
    time.sleep(0.7)
    assert ep.stop() == 0
    slow.join()
    assert answers[0].status_code == 200 and answers[0].text == "0\tdone\n"
