"""The README's main job: `finpulse up` runs every part, and generated news flows into labeled, queryable rows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import Stack, external_servers

pytestmark = pytest.mark.integration

ALL_PARTS = "kafka,clickhouse,model,ingest,stream,alerts,dashboard"


@pytest.mark.skipif(external_servers(), reason="starts its own local stack")
def test_up_runs_every_part_and_documents_arrive_labeled(tmp_path: Path, stream_model: dict[str, Any]) -> None:
    from warehouse.client import create_client

    stack = Stack.new(
        tmp_path / "data",
        FINPULSE_STACK_SERVICES=ALL_PARTS,
        FINPULSE_MODEL_DIR=str(stream_model["registry"]),
        FINPULSE_INGEST_GENERATOR_RATE="20",
        FINPULSE_MODEL_THREADS="1",
    )
    out = stack.finpulse("up", "--detach", timeout=600).stdout
    try:
        for part in ALL_PARTS.split(","):
            assert f"  {part}" in out, out
        report = json.loads(stack.finpulse("status", "--json").stdout)
        assert report["healthy"] is True, report
        assert set(report["parts"]) == set(ALL_PARTS.split(","))

        settings = stack.settings
        client = create_client(settings)
        deadline = time.monotonic() + 120
        rows: tuple[int, int, int] = (0, 0, 0)
        while time.monotonic() < deadline:
            rows = client.query(
                "SELECT uniqExact(id), countIf(topic IS NOT NULL AND sentiment IS NOT NULL), "
                "countIf(model_version = {v:String}) FROM finpulse.documents_latest WHERE lang = 'en'",
                parameters={"v": stream_model["version"]},
            ).result_rows[0]
            if rows[0] >= 20:
                break
            time.sleep(2)
        docs, labeled, versioned = rows
        assert docs >= 20, "generated English news did not reach ClickHouse through ingest -> Kafka -> stream"
        assert labeled == docs and versioned == docs
        # the per-source counters that `finpulse status` reports moved
        counters = report["parts"]["ingest"]["details"]["sources"]
        assert sum(s["produced"] for s in counters.values()) > 0
        # the dashboard answers with the Streamlit app
        page = httpx.get(f"http://127.0.0.1:{settings.dashboard_port}/", timeout=10)
        assert page.status_code == 200 and "<title>" in page.text
    finally:
        down = stack.finpulse("down", check=False)
    assert "stopped" in down.stdout
    status = stack.finpulse("status", "--json", check=False)
    assert status.returncode == 1
