"""Chinese data specs: FinFE sentiment, FinNL multi-label topics mapped onto the TFNS taxonomy, FinNSP opt-in."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from classifier import data
from classifier.specs import (
    BUILTIN_SPECS,
    COMPANY_TOPICS,
    DEFAULT_DATASETS,
    FINNL_TOPICS,
    TOPICS,
    DatasetSpec,
    futures_topic,
    map_topics,
    split_labels,
)
from finpulse.settings import load_settings


@pytest.fixture()
def zh_root(tmp_path: Path) -> Path:
    (tmp_path / "zh").mkdir()
    pd.DataFrame(
        {"text": ["今天大涨，满仓干", "跌麻了，割肉离场", "明天再看看"], "label": ["positive", "negative", "neutral"]}
    ).to_csv(tmp_path / "zh/finfe_train.csv", index=False)
    pd.DataFrame(
        {
            "text": [
                "腾讯控股回购46万股股份",
                "美股三大指数收盘集体下挫",
                "WTI原油期货日内走低1%",
                "现货钯金日内涨幅达2.00%",
                "哈萨克斯坦总统宣布紧急状态",
                "德国新增40043例新冠肺炎确诊病例",
                "这条新闻只有地区标签",
                "标签写错了",
            ],
            "labels": [
                "中国 公司 新冠",
                "外国 大盘",
                "国际 期货",
                "国际 期货",
                "外国 政治",
                "外国 新冠",
                "中国",
                "躯体",
            ],
        }
    ).to_csv(tmp_path / "zh/finnl_train.csv", index=False)
    pd.DataFrame(
        {"id": ["a", "b"], "title": ["t1", "t2"], "text": ["小资钱包涉嫌诈骗", "银行发布年报"], "negative": ["1", "0"]}
    ).to_csv(tmp_path / "zh/finnsp_train.csv", index=False)
    return tmp_path


def test_finnl_labels_map_onto_the_one_taxonomy() -> None:
    for label, topics in FINNL_TOPICS.items():
        assert all(t in TOPICS for t in topics), label
    assert FINNL_TOPICS["中国"] == FINNL_TOPICS["外国"] == FINNL_TOPICS["国际"] == ()
    mapped = map_topics(["中国", "公司", "新冠"], "腾讯控股回购")
    assert mapped.primary == "Company | Product News"  # the more specific label trains, not the pandemic
    assert set(mapped.gold) == {*COMPANY_TOPICS, "Macro"} and mapped.unknown == ()
    assert map_topics(["中国"]).gold == () and map_topics(["中国"]).primary is None
    assert map_topics(["外国", "躯体"]).unknown == ("躯体",)
    # Labels written together without a space, and misspelt ones, read as what they mean.
    assert map_topics(["中国大盘"]).gold == ("Markets",)
    assert map_topics(["虚拟火币"]).gold == ("Currencies",)
    # TFNS names work too (';' separates them because they contain spaces); the first one listed trains.
    names = split_labels("Earnings; Dividend")
    assert map_topics(names).primary == "Earnings" and map_topics(names).gold == ("Earnings", "Dividend")


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("WTI原油期货日内走低1%", "Energy | Oil"),
        ("CME比特币期货BTC主力合约报47540美元", "Currencies"),
        ("现货钯金日内涨幅达2.00%", "Gold | Metals | Materials"),
        ("沪铜期货主力合约收涨", "Gold | Metals | Materials"),
    ],
)
def test_futures_follow_their_commodity(text: str, topic: str) -> None:
    assert futures_topic(text) == topic
    assert map_topics(["国际", "期货"], text).gold == (topic,)


def test_chinese_sets_load_with_lang_and_gold(zh_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="classifier.data"):
        frame, prints = data.load_datasets(["finfe", "finnl"], zh_root)
    assert set(frame.columns) >= set(data.COLUMNS)
    assert (frame["lang"] == "zh").all()
    fe = frame[frame["source"] == "finfe"]
    assert fe["sentiment"].tolist() == ["positive", "negative", "neutral"] and fe["topic"].isna().all()
    nl = frame[frame["source"] == "finnl"].set_index("text")
    # Region-only and junk-only rows carry no topic and are dropped; the junk label is logged by name.
    assert "这条新闻只有地区标签" not in nl.index and "标签写错了" not in nl.index
    assert any("躯体" in str(getattr(r, "labels", "")) for r in caplog.records)
    assert nl.loc["WTI原油期货日内走低1%", "topic"] == "Energy | Oil"
    assert nl.loc["现货钯金日内涨幅达2.00%", "topic"] == "Gold | Metals | Materials"
    assert nl.loc["美股三大指数收盘集体下挫", "topics"] == ("Markets",)
    assert nl.loc["腾讯控股回购46万股股份", "topic"] == "Company | Product News"
    assert "Macro" in nl.loc["腾讯控股回购46万股股份", "topics"]
    assert prints["finnl"]["rows"] == 6
    # lang and the gold set survive dedupe; the split still works on the mixed frame.
    deduped = data.dedupe(frame)
    assert (deduped["lang"] == "zh").all()
    assert deduped.set_index("text").loc["德国新增40043例新冠肺炎确诊病例", "topics"] == ("Macro",)


def test_multilabel_spec_without_dropping_names_the_bad_label(zh_root: Path) -> None:
    strict = DatasetSpec(name="strict", task="topic", path="zh/finnl_train.csv", label_column=None,
                         labels_column="labels", lang="zh")  # fmt: skip
    with pytest.raises(data.DataError, match="躯体"):
        data.load_datasets([strict], zh_root)
    with pytest.raises(ValueError, match="only makes sense for topic"):
        DatasetSpec(name="x", task="sentiment", path="x.csv", label_column=None, labels_column="labels")
    with pytest.raises(ValueError, match="exactly one"):
        DatasetSpec(name="x", task="topic", path="x.csv", labels_column="labels")


def test_finnsp_is_opt_in_and_only_negative(zh_root: Path) -> None:
    frame, _ = data.load_datasets(["finnsp"], zh_root)
    assert frame["text"].tolist() == ["小资钱包涉嫌诈骗"] and frame["sentiment"].tolist() == ["negative"]
    assert "finnsp" not in DEFAULT_DATASETS
    assert {"finfe", "finnl"} <= set(DEFAULT_DATASETS)
    assert data.available_builtin(zh_root) == ["finfe", "finnl"]
    assert data.available_builtin(zh_root, ["finnsp"]) == ["finnsp"]


def test_english_rows_are_tagged_en(data_root: Path) -> None:
    frame, _ = data.load_datasets(["tfns_sentiment"], data_root)
    assert (frame["lang"] == "en").all() and frame["topics"].isna().all()
    assert BUILTIN_SPECS["tfns_sentiment"].lang == "en"


def test_no_data_message_names_the_chinese_files(tmp_path: Path) -> None:
    message = data.no_data_message(tmp_path)
    assert str(tmp_path) in message and "zh/finfe_train.csv" in message and "finpulse train --data" in message


def test_real_finnl_labels_are_all_understood() -> None:
    """Every FinNL label that occurs 3+ times in the shared files maps (to a topic or, for regions, to none)."""
    root = load_settings().shared_data_dir
    if root is None or not (root / "zh/finnl_train.csv").is_file():
        pytest.skip("the shared FinNL files are not on this machine")
    for name in ("finnl_train.csv", "finnl_eval.csv"):
        labels = pd.read_csv(root / "zh" / name, dtype=str, keep_default_na=False)["labels"]
        counts = pd.Series([u for raw in labels for u in map_topics(split_labels(raw)).unknown]).value_counts()
        assert counts.empty or counts.max() < 3, counts.head()
        assert counts.sum() < 0.01 * len(labels)
