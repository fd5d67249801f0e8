from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from classifier import data
from classifier.specs import BUILTIN_SPECS, DatasetSpec


def _frame(rows: list[tuple[str, str | None, str | None, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"text": t, "sentiment": s, "topic": p, "source": src, "group": None} for t, s, p, src in rows]
    )


@pytest.mark.parametrize(
    ("raw", "task", "expected"),
    [
        ("bearish", "sentiment", "negative"),
        ("Bullish", "sentiment", "positive"),
        (" neutral ", "sentiment", "neutral"),
        ("fed | central banks", "topic", "Fed | Central Banks"),
        ("M&A  | Investments", "topic", "M&A | Investments"),
    ],
)
def test_normalise_label(raw: str, task: str, expected: str) -> None:
    assert data.normalise_label(raw, task) == expected  # type: ignore[arg-type]


def test_normalise_label_ids_and_unknown() -> None:
    spec = BUILTIN_SPECS["tfns_sentiment"]
    assert spec.hub is not None
    assert data.normalise_label(0, "sentiment", dict(spec.hub.label_map)) == "negative"
    with pytest.raises(data.DataError, match="unknown topic label"):
        data.normalise_label("Sports", "topic")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_read_table_formats_and_column_mapping(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"headline": ["Acme up", "Acme down", " "], "mood": ["bullish", "bearish", "neutral"]})
    path = tmp_path / f"f{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    spec = DatasetSpec(name="mine", task="sentiment", path=str(path), text_column="headline", label_column="mood")
    out = data.load_spec(spec, None)
    assert out["text"].tolist() == ["Acme up", "Acme down"]  # blank text dropped
    assert out["sentiment"].tolist() == ["positive", "negative"]
    assert out["topic"].isna().all()


def test_missing_column_and_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    pd.DataFrame({"text": ["a"]}).to_csv(path, index=False)
    spec = DatasetSpec(name="x", task="sentiment", path=str(path))
    with pytest.raises(data.DataError, match="missing column"):
        data.load_spec(spec, None)
    with pytest.raises(data.DataError, match="does not exist"):
        data.read_table(tmp_path / "nope.csv")


def test_score_thresholds() -> None:
    frame = pd.DataFrame({"text": ["a", "b", "c"], "score": [-0.5, 0.05, 0.6]})
    out = data.frame_from_table(frame, BUILTIN_SPECS["fiqa"])
    assert out["sentiment"].tolist() == ["negative", "neutral", "positive"]


def test_dedupe_merges_near_duplicates_and_labels() -> None:
    frame = _frame(
        [
            ("Acme beats estimates https://t.co/aaa", "positive", None, "tfns_sentiment"),
            ("ACME beats   estimates https://t.co/bbb", None, "Earnings", "tfns_topic"),
            ("Fed holds rates", None, "Fed | Central Banks", "tfns_topic"),
            ("fed holds rates", None, "Macro", "tfns_topic"),  # tie between two topics: label dropped
            ("Oil rises", "positive", None, "a"),
            ("oil rises", "positive", None, "b"),
            ("oil rises ", "negative", None, "c"),  # majority wins
        ]
    )
    out = data.dedupe(frame).set_index("key")
    assert len(out) == 2
    assert out.loc["acme beats estimates", ["sentiment", "topic"]].tolist() == ["positive", "Earnings"]
    assert out.loc["oil rises", "sentiment"] == "positive"


def test_split_is_stratified_reproducible_and_leak_free() -> None:
    rows = [(f"text {i}", ["negative", "neutral", "positive"][i % 3], None, "s") for i in range(300)]
    frame = _frame(rows)
    train, val = data.stratified_split(frame, 0.2, seed=1)
    _, again_val = data.stratified_split(frame, 0.2, seed=1)
    _, other_val = data.stratified_split(frame, 0.2, seed=2)
    assert len(val) == 60 and len(train) == 240
    assert val["sentiment"].value_counts().tolist() == [20, 20, 20]
    assert val["text"].tolist() == again_val["text"].tolist()
    assert set(val["text"]) != set(other_val["text"])
    data.check_no_leak(train, val)


def test_leak_is_refused() -> None:
    train = _frame([("Acme beats estimates https://t.co/a", "positive", None, "s")])
    val = _frame([("acme  BEATS estimates", "positive", None, "s")])
    with pytest.raises(data.DataLeakError, match="1 validation text"):
        data.check_no_leak(train, val)


def test_no_data_message_says_how_to_provide_data(tmp_path: Path) -> None:
    assert data.available_builtin(tmp_path) == []
    message = data.no_data_message(tmp_path)
    assert "FINPULSE_SHARED_DATA_DIR" in message and "--data" in message


def test_fingerprint_is_order_independent() -> None:
    frame = _frame([("a", "positive", None, "s"), ("b", None, "IPO", "s")])
    assert data.frame_fingerprint(frame) == data.frame_fingerprint(frame.iloc[::-1])
    assert data.frame_fingerprint(frame) != data.frame_fingerprint(frame.iloc[:1])
