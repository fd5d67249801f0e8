"""The SQL explorer's saved queries: a small JSON file under the data directory, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

from finpulse.settings import Settings

MAX_NAME = 80
EXAMPLES: dict[str, str] = {
    "Negative share by topic, last 24 h": (
        "SELECT topic, uniqExact(id) AS docs, round(countIf(sentiment = 'negative') / count(), 3) AS negative_share\n"
        "FROM documents_latest\nWHERE published_at >= now() - INTERVAL 1 DAY\nGROUP BY topic\nORDER BY docs DESC"
    ),
    "Most mentioned tickers, last hour": (
        "SELECT ticker, sum(docs) AS docs\nFROM documents_minutely_counts\n"
        "WHERE minute >= now() - INTERVAL 1 HOUR AND ticker != ''\nGROUP BY ticker\nORDER BY docs DESC\nLIMIT 20"
    ),
    "Newest documents": (
        "SELECT published_at, source, topic, sentiment, title\nFROM documents_latest\n"
        "ORDER BY published_at DESC\nLIMIT 50"
    ),
}
_lock = threading.Lock()  # Streamlit sessions are threads of one process


def path(settings: Settings) -> Path:
    return settings.data_dir / "dashboard" / "saved_queries.json"


def load(settings: Settings) -> dict[str, str]:
    try:
        data = json.loads(path(settings).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError:
        return {}  # a broken file must not take the page down; the next save rewrites it
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save(settings: Settings, name: str, sql: str) -> dict[str, str]:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"a saved query needs a name of 1-{MAX_NAME} characters")
    if not sql.strip():
        raise ValueError("there is no SQL to save")
    with _lock:
        queries = load(settings) | {name: sql}
        _write(settings, queries)
    return queries


def delete(settings: Settings, name: str) -> dict[str, str]:
    with _lock:
        queries = load(settings)
        queries.pop(name, None)
        _write(settings, queries)
    return queries


def _write(settings: Settings, queries: dict[str, str]) -> None:
    target = path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".saved_queries.", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(sorted(queries.items())), handle, ensure_ascii=False, indent=2)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
