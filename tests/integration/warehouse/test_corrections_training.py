"""The feedback loop on the real local endpoint: analysts' corrections recorded through warehouse.queries.corrections
reach the background trainer's retrain once N have accumulated, held-out documents never reach training, and
`finpulse models corrections` reports them per model."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from classifier import background
from classifier import corrections as corrmod
from classifier.quick import train_quick
from classifier.registry import Registry
from classifier.train import text_key
from tests.models import micro_encoder
from tests.stack import local_only
from warehouse.client import create_client
from warehouse.migrate import migrate
from warehouse.queries.corrections import record_correction

from .conftest import Endpoint

pytestmark = [pytest.mark.integration, local_only]

SERVED = "quick-2026.12"
WORDS = ["zorblax", "quuxcorp", "flibber", "wumpus", "grault", "plugh"]
DOCS = 8


def _labeled_root(root: Path) -> Path:
    """Tiny synthetic labeled sets in the built-in layout (never the licensed files)."""
    rng = random.Random(5)
    phrases = {
        "bullish": "shares soar after record profit",
        "bearish": "shares plunge after profit warning",
        "neutral": "to hold annual meeting on Tuesday",
    }
    (root / "en").mkdir(parents=True)
    rows = [
        {"text": f"{rng.choice(['Acme', 'Globex', 'Initech'])} {phrases[label]} #{i}", "label": label}
        for i in range(150)
        for label in [rng.choice(list(phrases))]
    ]
    pd.DataFrame(rows).to_csv(root / "en/tfns_sentiment_train.csv", index=False)
    return root


def _doc(i: int) -> dict[str, Any]:
    rng = random.Random(i)
    published = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    return {
        "id": f"fb-{i}",
        "source": "wire",
        "kind": "news",
        "lang": "en",
        "title": f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} deal {i} {rng.choice(WORDS)}",
        "body": "",
        "url": f"https://example.com/fb-{i}",
        "author": None,
        "published_at": published,
        "ingested_at": published,
        "tickers": [],
        "entities": [],
        "meta": "{}",
        "topic": "Markets",
        "topic_score": 0.6,
        "sentiment": "positive",
        "sentiment_score": 0.6,
        "topic_probs": {"Markets": 0.6},
        "sentiment_probs": {"negative": 0.1, "neutral": 0.3, "positive": 0.6},
        "model_version": SERVED,
        "classified_at": published + timedelta(seconds=1),
        "schema_version": 2,
        "story_id": f"fb-{i}",
        "novelty": 1.0,
    }


def test_corrections_trigger_a_retrain_and_the_report(endpoint: Endpoint, tmp_path: Path) -> None:
    encoder = micro_encoder(tmp_path / "encoder")
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        "[training]\n"
        f'base_model = "{encoder}"\n'
        'datasets = ["tfns_sentiment"]\nmax_steps = 4\nbatch_size = 16\nmax_length = 32\nprecision = "fp32"\n'
        "eval_every_steps = 2\n",
        encoding="utf-8",
    )
    settings = endpoint.settings.model_copy(
        update={
            "clickhouse_database": "corrections_training_test",
            "data_dir": tmp_path / "dd",
            "shared_data_dir": _labeled_root(tmp_path / "shared"),
            "trainer_recipe": str(recipe),
            "model_backend": "torch",
            "correction_retrain_after": 2 * DOCS,  # sentiment + topic of every document
            "correction_holdout_share": 0.4,
        }
    )
    migrate(settings)
    client = create_client(settings)
    docs = [_doc(i) for i in range(DOCS)]
    names = list(docs[0])
    client.insert("documents", [[d[n] for n in names] for d in docs], column_names=names)

    registry = Registry.from_settings(settings)
    train_quick(settings, name="quick", promote=True)  # the store answers and holds no corrections yet
    assert registry.get("quick").corrections["documents"] == 0  # type: ignore[index]
    assert background.run(settings, idle=False)["state"] == "done"  # the recipe's own job
    assert background.poll_corrections(settings) is None  # nothing corrected yet

    for i, doc in enumerate(docs):
        record_correction(client, document_id=doc["id"], field="sentiment", label="negative", analyst="ana")
        if i < DOCS - 1:
            record_correction(client, document_id=doc["id"], field="topic", label="M&A | Investments", analyst="ana")
    assert background.poll_corrections(settings) is None  # 2N - 1 corrections: one short
    assert f"{2 * DOCS - 1}/{2 * DOCS} new" in background.summary(background.read_progress(settings))

    record_correction(client, document_id=docs[-1]["id"], field="topic", label="M&A | Investments", analyst="bob")
    result = background.poll_corrections(settings)
    assert result is not None and result["trigger"] == "corrections" and result["corrections_used"] == 2 * DOCS
    trained = registry.get(result["model"])
    summary = trained.corrections or {}
    held = {d["id"] for d in docs if corrmod.is_held_out(d["id"], 0.4)}
    assert summary["documents"] == DOCS and summary["held_out"] == len(held)
    keys = set(np.load(trained.path / "train_keys.npy").tolist())
    for doc in docs:  # held-out documents never reach the training rows; the others do
        assert (text_key(doc["title"]) in keys) == (doc["id"] not in held), doc["id"]
    assert set(corrmod.load_slice(trained.path)["document_id"]) == held
    assert result["corrections_rows"] == len(held)

    env = {
        "FINPULSE_DATA_DIR": str(settings.data_dir),
        "FINPULSE_CLICKHOUSE_PORT": str(settings.clickhouse_port),
        "FINPULSE_CLICKHOUSE_PASSWORD": settings.clickhouse_password or "",
        "FINPULSE_CLICKHOUSE_DATABASE": settings.clickhouse_database,
    }
    from finpulse.cli import app

    out = CliRunner().invoke(app, ["models", "corrections", "--json"], env=env)
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    by_version = {r["model_version"]: r for r in report["models"]}
    assert report["corrections"] == 2 * DOCS
    assert by_version[SERVED]["overridden"] == 2 * DOCS and by_version[SERVED]["disagreed"] == 2 * DOCS
    assert by_version[SERVED]["model"] is None  # the stream's label came from a model not in this registry
    assert by_version[registry.get("quick").model_version]["replay"]["sentiment"]["n"] == DOCS
    client.close()
