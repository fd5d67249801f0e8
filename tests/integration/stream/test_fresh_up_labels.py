"""A fresh data dir (empty registry): `finpulse up` does not wait for a transformer. The model step trains the
quick model in seconds, English and Chinese generated news arrive labeled, and `finpulse status` shows the
background trainer's progress."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.models import micro_encoder
from tests.stack import Stack, external_servers

pytestmark = pytest.mark.integration

PARTS = "kafka,clickhouse,model,ingest,stream,trainer"
EN_SENT = {
    "bullish": ["shares soar after record profit", "beats estimates and raises guidance"],
    "bearish": ["shares plunge after profit warning", "misses estimates and cuts guidance"],
    "neutral": ["to hold annual meeting on Tuesday", "announces date of quarterly report"],
}
ZH_SENT = {
    "positive": ["股价大涨，业绩超预期", "净利润同比大增"],
    "negative": ["股价暴跌，亏损扩大", "业绩大幅下滑"],
    "neutral": ["将于周二召开股东大会", "发布董事会换届公告"],
}


def _shared_data(root: Path) -> Path:
    """Small labeled files in the built-in layout (English and Chinese), never the licensed sets."""
    rng = random.Random(5)
    (root / "en").mkdir(parents=True)
    (root / "zh").mkdir()
    sent = [
        {"text": f"Acme {rng.choice(p)} #{i}", "label": lab}
        for i in range(150)
        for lab, p in [rng.choice(list(EN_SENT.items()))]
    ]
    pd.DataFrame(sent).to_csv(root / "en/tfns_sentiment_train.csv", index=False)
    topics = [{"text": f"Acme declares dividend of {i} cents", "label": "Dividend"} for i in range(60)]
    topics += [{"text": f"Fed holds rates at {i} bps", "label": "Fed | Central Banks"} for i in range(60)]
    pd.DataFrame(topics).to_csv(root / "en/tfns_topic_train.csv", index=False)
    zh = [
        {"text": f"公司{rng.choice(p)}（{i}）", "label": lab}
        for i in range(150)
        for lab, p in [rng.choice(list(ZH_SENT.items()))]
    ]
    pd.DataFrame(zh).to_csv(root / "zh/finfe_train.csv", index=False)
    nl = [{"text": f"某公司宣布并购计划，金额{i}亿元", "labels": "中国 公司"} for i in range(60)]
    nl += [{"text": f"央行宣布降准{i}个基点", "labels": "中国 经济"} for i in range(60)]
    pd.DataFrame(nl).to_csv(root / "zh/finnl_train.csv", index=False)
    return root


@pytest.mark.skipif(external_servers(), reason="starts its own local stack")
def test_fresh_up_labels_english_and_chinese_without_waiting_for_the_transformer(tmp_path: Path) -> None:
    from warehouse.client import create_client

    base = micro_encoder(tmp_path / "micro")
    recipe = tmp_path / "micro.toml"
    recipe.write_text(
        f'[training]\nbase_model = "{base}"\nmax_steps = 8\nbatch_size = 16\nmax_length = 32\n'
        "eval_every_steps = 4\ncheckpoint_every_steps = 2\n",
        encoding="utf-8",
    )
    stack = Stack.new(
        tmp_path / "data",
        FINPULSE_STACK_SERVICES=PARTS,
        FINPULSE_SHARED_DATA_DIR=str(_shared_data(tmp_path / "shared")),
        FINPULSE_TRAINER_RECIPE=str(recipe),
        FINPULSE_MODEL_BACKEND="torch",
        FINPULSE_INGEST_GENERATOR_RATE="20",
        FINPULSE_MODEL_THREADS="1",
    )
    started = time.monotonic()
    out = stack.finpulse("up", "--detach", timeout=600).stdout
    up_s = time.monotonic() - started
    try:
        assert "  trainer" in out, out
        client = create_client(stack.settings)
        deadline = started + 180
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            rows = client.query(
                "SELECT lang, countIf(topic IS NOT NULL AND sentiment IS NOT NULL) FROM finpulse.documents_latest "
                "WHERE lang IN ('en', 'zh') GROUP BY lang"
            ).result_rows
            counts = dict(rows)
            if counts.get("en", 0) > 0 and counts.get("zh", 0) > 0:
                break
            time.sleep(2)
        first_labels_s = time.monotonic() - started
        print(f"finpulse up --detach: {up_s:.1f} s; first EN + ZH labels in ClickHouse: {first_labels_s:.1f} s")
        assert counts.get("en", 0) > 0 and counts.get("zh", 0) > 0, counts
        versions = client.query("SELECT DISTINCT model_version FROM finpulse.documents_latest").result_rows
        assert any(v[0].startswith("finpulse-quick-") for v in versions), versions
        status = stack.finpulse("status", check=False).stdout
        assert "trainer" in status and ("training step" in status or "done" in status or "evaluating" in status), status
        report = json.loads(stack.finpulse("status", "--json", check=False).stdout)
        assert report["parts"]["trainer"]["healthy"], report["parts"]["trainer"]
    finally:
        stack.finpulse("down", check=False)
