"""Entity rows written by the stream: a real worker (Kafka -> classify -> ClickHouse) with a tiny entity model trained
through classifier/entity/linear.py in its registry writes document_entities rows, one per (document, ticker), beside
the documents, and counts them in its metrics."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from classifier.entity import convert
from classifier.entity.linear import train_entity
from finpulse.contracts import make_raw
from finpulse.settings import load_settings
from tests.integration.stream.conftest import StreamEnv
from tests.unit.classifier.test_entity import contrast_rows

pytestmark = pytest.mark.integration


def test_the_stream_writes_entity_rows(stream_env: StreamEnv, stream_model: dict[str, Any], tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(stream_model["registry"], registry)  # the session's registry stays without an entity model
    data = tmp_path / "entity-data"
    (data / "en").mkdir(parents=True)
    pd.DataFrame(contrast_rows(240)).to_csv(data / convert.FIQA_FILE, index=False)
    settings = load_settings(data_dir=tmp_path / "home", model_dir=registry, shared_data_dir=data)
    entity_model = train_entity(settings, data_root=data, name="ent", promote=True)
    stream_env.env["FINPULSE_MODEL_DIR"] = str(registry)

    n = 20
    title = "Initech beats estimates while rival Hooli warns on revenue"
    contrast = [
        make_raw(source="entities", kind="news", title=f"{title} #{i}", tickers=["INITECH", "HOOLI"], lang="en")
        for i in range(n)
    ]
    plain = [make_raw(source="entities", kind="news", title=f"Markets calm #{i}", lang="en") for i in range(5)]
    worker = stream_env.worker()
    stream_env.produce_docs(contrast + plain)
    worker.wait_ready()
    stream_env.wait_distinct("entities", n + 5, timeout=120)
    deadline = time.monotonic() + 30
    rows: list[tuple] = []
    while time.monotonic() < deadline:
        rows = stream_env.query(
            "SELECT entity, sentiment, rank, relevance, model_version, label_source, count() "
            "FROM document_entities FINAL GROUP BY entity, sentiment, rank, relevance, model_version, label_source"
        )
        if sum(r[6] for r in rows) >= 2 * n:
            break
        time.sleep(0.25)
    by_entity = {r[0]: r for r in rows}
    assert sum(r[6] for r in rows) == 2 * n, f"2 entity rows per contrast document, none for the others: {rows}"
    assert set(by_entity) == {"INITECH", "HOOLI"}, "keyed by the ticker"
    assert (by_entity["INITECH"][1], by_entity["HOOLI"][1]) == ("positive", "negative")
    assert {r[4] for r in rows} == {entity_model.model_version} and {r[5] for r in rows} == {"model"}
    ids = stream_env.query(
        "SELECT count() FROM document_entities FINAL WHERE document_id NOT IN "
        "(SELECT id FROM documents_latest WHERE source = 'entities')"
    )[0][0]
    assert ids == 0, "every entity row belongs to a stored document"
    health = worker.health()
    assert health is not None and health["entity_model_version"] == entity_model.model_version
    metrics = worker.metrics()
    assert f"finpulse_stream_entity_rows_total {float(2 * n)}" in metrics
    assert f'finpulse_stream_entity_model_info{{model_version="{entity_model.model_version}"}} 1.0' in metrics
    assert "finpulse_stream_entity_inference_seconds_count" in metrics
