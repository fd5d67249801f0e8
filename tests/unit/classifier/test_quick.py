"""The quick model: trains in seconds on small written EN + ZH files, serves both languages through the same
loader as the stream, and `finpulse up`'s model step never blocks on the transformer."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classifier.bootstrap import PLACEHOLDER_NAME, ensure_default_model
from classifier.engine import InputError
from classifier.model import ModelLoadError
from classifier.quick import QuickEngine, text_language, train_quick
from classifier.registry import Registry
from classifier.serving import UnlabeledEngine, load_engine
from classifier.specs import DatasetSpec
from finpulse.settings import load_settings

ZH_COMPANIES = ["贵州茅台", "宁德时代", "招商银行", "比亚迪", "中国平安", "万科", "腾讯", "阿里巴巴"]
ZH_SENTIMENT = {
    "positive": ["股价大涨，业绩超预期", "净利润同比大增，获机构看好", "订单暴增，股价创历史新高"],
    "negative": ["股价暴跌，亏损扩大", "业绩大幅下滑，遭遇减持", "被立案调查，股价跌停"],
    "neutral": ["将于周二召开股东大会", "发布公告称董事会换届", "公司办公地址变更"],
}
ZH_TOPICS = {"Dividend": "{c}宣布每股派发现金红利{n}元", "IPO": "{c}首次公开发行股票并在创业板上市，募资{n}亿元"}


@pytest.fixture(scope="module")
def zh_specs(tmp_path_factory: pytest.TempPathFactory) -> list[DatasetSpec]:
    root = tmp_path_factory.mktemp("zh-data")
    rng = random.Random(11)
    rows = []
    for i in range(150):
        label = rng.choice(list(ZH_SENTIMENT))
        rows.append({"text": f"{rng.choice(ZH_COMPANIES)}{rng.choice(ZH_SENTIMENT[label])}（{i}）", "label": label})
    pd.DataFrame(rows).to_csv(root / "zh_sentiment.csv", index=False)
    topics = [
        {"text": tpl.format(c=rng.choice(ZH_COMPANIES), n=rng.randrange(1, 99)), "label": topic}
        for _ in range(40)
        for topic, tpl in ZH_TOPICS.items()
    ]
    pd.DataFrame(topics).to_csv(root / "zh_topic.csv", index=False)
    return [
        DatasetSpec(name="zh_sentiment", task="sentiment", path=str(root / "zh_sentiment.csv"), lang="zh"),
        DatasetSpec(name="zh_topic", task="topic", path=str(root / "zh_topic.csv"), lang="zh"),
    ]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, data_root: Path, zh_specs: list[DatasetSpec]) -> dict:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("quick-dd"), shared_data_dir=data_root)
    started = time.monotonic()
    info = train_quick(settings, name="quick", promote=True, extra_specs=zh_specs)
    return {"settings": settings, "info": info, "seconds": time.monotonic() - started}


def test_language_detection() -> None:
    assert text_language("Acme shares soar") == "en"
    assert text_language("贵州茅台股价大涨 NASDAQ") == "zh"
    assert text_language("1234 !!") == "en"


def test_quick_model_trains_in_seconds_and_learns_both_languages(quick: dict) -> None:
    info = quick["info"]
    assert quick["seconds"] < 60
    assert info.kind == "linear" and info.promoted and set(info.languages) == {"en", "zh"}
    meta = json.loads((info.path / "meta.json").read_text())
    validation = meta["validation"]["promotion"]
    # Chance is 1/3 (sentiment) and 1/4 or 1/2 (topic); the templates are easy, so a working model beats it clearly.
    for key in ("en/sentiment", "zh/sentiment", "en/topic", "zh/topic"):
        assert validation[key]["n"] > 0 and validation[key]["accuracy"] > 0.7, (key, validation[key])
    assert 0 < validation["score"] <= 1
    assert {"promotion", "holdout"} <= set(meta["validation"])
    card = (info.path / "README.md").read_text()
    assert "zh/sentiment" in card and "holdout split" in card
    names = {p.name for p in info.path.iterdir()}
    assert {"quick.npz", "vocabulary.json", "train_keys.npy", "training_args.json", "data.json"} <= names
    assert not any(n.endswith((".pkl", ".joblib", ".pickle")) for n in names)


def test_quick_engine_api(quick: dict) -> None:
    engine = load_engine(quick["info"].path, quick["settings"], "cpu")
    assert isinstance(engine, QuickEngine)
    texts = [
        "Acme shares soar after record profit https://t.co/x",
        "Globex shares plunge after profit warning",
        "比亚迪股价暴跌，亏损扩大",
        "招商银行宣布每股派发现金红利3元",
    ]
    preds = engine.predict(texts)
    assert [p.sentiment for p in preds[:3]] == ["positive", "negative", "negative"]
    assert preds[3].topic == "Dividend"
    for p in preds:
        assert sum(p.topic_probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert sum(p.sentiment_probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert p.topic_score == max(p.topic_probs.values())
        expected = p.sentiment_probs["positive"] - p.sentiment_probs["negative"]
        assert p.sentiment_score == pytest.approx(expected, abs=1e-6)
    assert engine.predict(texts[2]).sentiment == "negative"
    assert engine.model_version.startswith("quick@") and engine.supports_language("zh-CN")
    assert engine.supports_language(None) and not engine.supports_language("de")
    assert engine.predict([]) == []
    long = engine.predict(["Acme profit " * 5000])[0]
    assert long.truncated
    for bad in ([None], ["ok", 3], [b"bytes"]):
        with pytest.raises(InputError, match=r"texts\[\d\] is"):
            engine.predict(bad)  # type: ignore[arg-type]
    topic, sentiment, truncated = engine.predict_proba(texts)
    assert topic.shape == (4, 20) and sentiment.shape == (4, 3) and not truncated.any()
    again = QuickEngine.load(quick["info"].path)
    np.testing.assert_allclose(again.predict_proba(texts)[1], sentiment, atol=1e-6)


def test_load_engine_dispatch_and_refusals(quick: dict, trained: dict, tmp_path: Path) -> None:
    from classifier.engine import ClassifierEngine

    assert isinstance(load_engine(trained["model"], None, "cpu", threads=1), ClassifierEngine)
    broken = tmp_path / "broken"
    broken.mkdir()
    meta = json.loads((quick["info"].path / "meta.json").read_text())
    (broken / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="not a loadable quick model"):
        load_engine(broken, None, "cpu")
    (broken / "meta.json").write_text(json.dumps({**meta, "kind": "gradient-boosting"}))
    with pytest.raises(ModelLoadError, match="unknown model kind"):
        load_engine(broken, None, "cpu")
    with pytest.raises(ModelLoadError, match="not a FinPulse model directory"):
        load_engine(tmp_path / "nothing", None, "cpu")


def test_bootstrap_promotes_quick_model_in_seconds(data_root: Path, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "fresh", shared_data_dir=data_root)
    messages: list[str] = []
    started = time.monotonic()
    info = ensure_default_model(settings, echo=messages.append)
    assert time.monotonic() - started < 60
    assert info.kind == "linear" and Registry.from_settings(settings).promoted().name == info.name  # type: ignore[union-attr]
    assert any("quick model" in m for m in messages) and any("background" in m for m in messages)
    assert ensure_default_model(settings, echo=messages.append).name == info.name  # promoted: nothing trained


def test_no_data_starts_unlabeled_and_says_how_to_provide_data(data_root: Path, tmp_path: Path) -> None:
    empty = load_settings(data_dir=tmp_path / "fresh", shared_data_dir=tmp_path / "no-data")
    messages: list[str] = []
    info = ensure_default_model(empty, echo=messages.append)
    assert info.kind == "none" and info.name == PLACEHOLDER_NAME and info.promoted
    assert "FINPULSE_SHARED_DATA_DIR" in messages[0] and "unlabeled" in messages[0]
    engine = load_engine(info.path, empty, "cpu")
    assert isinstance(engine, UnlabeledEngine) and not engine.supports_language("en")
    assert not engine.supports_language(None)  # the stream then stores every document without labels

    from finpulse.contracts import RawDocument, utcnow
    from stream.batch import classify

    raw = RawDocument(id="doc-0001", source="test", kind="news", title="Acme shares soar", published_at=utcnow())
    (doc,) = classify(engine, [raw])
    assert doc.topic is None and doc.sentiment is None and doc.model_version == engine.model_version
    # once data is there, the next start trains the quick model and replaces the placeholder
    with_data = load_settings(data_dir=tmp_path / "fresh", shared_data_dir=data_root)
    replaced = ensure_default_model(with_data, echo=messages.append)
    assert replaced.kind == "linear" and Registry.from_settings(with_data).promoted().name == replaced.name  # type: ignore[union-attr]
