"""`finpulse evaluate` on Chinese files and multi-label gold, and its messages for bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from classifier import evaluate as ev
from classifier.data import DataError
from classifier.specs import SENTIMENTS, TOPICS


class KeywordEngine:
    """Predicts a fixed topic / sentiment per keyword, so expected scores can be worked out by hand."""

    model_version = "fake-1"
    RULES: ClassVar[dict[str, str]] = {
        "回购": "Stock Movement",
        "指数": "Markets",
        "原油": "Energy | Oil",
        "Fed": "Fed | Central Banks",
    }

    def predict_proba(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, None]:
        topic = np.full((len(texts), len(TOPICS)), 0.01, dtype=np.float32)
        sentiment = np.full((len(texts), len(SENTIMENTS)), 0.1, dtype=np.float32)
        for i, text in enumerate(texts):
            name = next((t for k, t in self.RULES.items() if k in text), "Politics")
            topic[i, TOPICS.index(name)] = 0.9
            sentiment[i, SENTIMENTS.index("negative" if "跌" in text else "positive")] = 0.8
        return topic, sentiment, None


def _write(path: Path, rows: dict[str, list[str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture()
def finnl_eval(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "finnl_eval.csv",
        {
            "text": [
                "腾讯控股回购46万股股份",  # gold {company topics}: Stock Movement is one of them -> right
                "美股三大指数收盘集体下挫",  # gold {Markets} -> right
                "WTI原油期货日内走低1%",  # gold {Energy | Oil} (futures about oil) -> right
                "哈萨克斯坦总统宣布紧急状态",  # gold {Macro}, predicted Politics -> wrong
                "只有地区标签的新闻",  # region tags only: excluded, counted
                "Fed holds rates steady",  # an English row in the same file
            ],
            "labels": ["中国 公司", "外国 大盘", "国际 期货", "外国 经济", "中国 外国", "Fed | Central Banks"],
        },
    )


def test_multilabel_topic_is_right_when_in_gold(finnl_eval: Path) -> None:
    report = ev.evaluate(KeywordEngine(), finnl_eval, "topic")
    assert report["multi_label"] is True
    assert report["n"] == 5 and report["excluded_no_gold"] == 1
    assert report["accuracy"] == pytest.approx(4 / 5)
    # Strictly against the training label, the company row (primary Company | Product News) is wrong.
    assert report["primary_accuracy"] == pytest.approx(3 / 5)
    assert report["by_lang"]["zh"]["n"] == 4 and report["by_lang"]["zh"]["accuracy"] == pytest.approx(3 / 4)
    assert report["by_lang"]["en"] == {"n": 1, "accuracy": 1.0, "macro_f1": 1.0}
    assert report["per_class"]["Stock Movement"]["precision"] == 1.0


def test_chinese_sentiment_file_and_lang_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "finfe_eval.csv",
        {
            "text": ["跌麻了", "大涨满仓", "又跌了", "Acme beats"],
            "label": ["negative", "positive", "neutral", "bullish"],
            "lang": ["zh", "zh", "zh", "en"],
        },
    )
    report = ev.evaluate(KeywordEngine(), path, "sentiment")
    assert report["multi_label"] is False and report["n"] == 4
    assert report["accuracy"] == pytest.approx(3 / 4)
    assert report["by_lang"]["zh"]["accuracy"] == pytest.approx(2 / 3)


def test_unknown_labels_are_named(tmp_path: Path, finnl_eval: Path) -> None:
    bad = _write(tmp_path / "bad.csv", {"text": ["a", "b", "c"], "label": ["positive", "Sports", "meh"]})
    with pytest.raises(DataError) as err:
        ev.load_labeled(bad, "sentiment")
    assert "'Sports'" in str(err.value) and "'meh'" in str(err.value) and "--ignore-unknown-labels" in str(err.value)
    rows = ev.load_labeled(bad, "sentiment", ignore_unknown=True)
    assert rows.texts == ["a"] and rows.dropped_labels == {"Sports": 1, "meh": 1}

    junk = _write(tmp_path / "junk.csv", {"text": ["x", "y"], "labels": ["中国 公司", "上个 躯体"]})
    with pytest.raises(DataError, match=r"'上个'.*'躯体'"):
        ev.load_labeled(junk, "topic")
    assert ev.load_labeled(junk, "topic", ignore_unknown=True).dropped_labels == {"上个": 1, "躯体": 1}


def test_bad_files_get_reasons(tmp_path: Path) -> None:
    regions = _write(tmp_path / "regions.csv", {"text": ["x"], "labels": ["中国"]})
    with pytest.raises(DataError, match=r"no row left to score.*1 row"):
        ev.load_labeled(regions, "topic")
    with pytest.raises(DataError, match="only for --task topic"):
        ev.load_labeled(regions, "sentiment")
    nolabel = _write(tmp_path / "nolabel.csv", {"text": ["x"], "other": ["y"]})
    with pytest.raises(DataError, match="no column 'label'"):
        ev.load_labeled(nolabel, "sentiment")
    with pytest.raises(DataError, match="does not exist"):
        ev.load_labeled(tmp_path / "missing.csv", "topic")


def test_cli_reports_multilabel_and_unknown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, finnl_eval: Path) -> None:
    from classifier import registry, serving
    from finpulse.cli import app

    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path / "dd"))
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps at the terminal width
    monkeypatch.setattr(registry.Registry, "resolve", lambda self, name: tmp_path / "m")
    monkeypatch.setattr(serving, "load_engine", lambda *a, **k: KeywordEngine())
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "-m", "x", "--data", str(finnl_eval), "--task", "topic", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] == pytest.approx(0.8) and report["excluded_no_gold"] == 1
    text = runner.invoke(app, ["evaluate", "-m", "x", "--data", str(finnl_eval), "--task", "topic"])
    assert text.exit_code == 0 and "top-1-in-gold" in text.output and "1 row(s) excluded" in text.output
    bad = _write(tmp_path / "bad.csv", {"text": ["a"], "label": ["Sports"]})
    failed = runner.invoke(app, ["evaluate", "-m", "x", "--data", str(bad), "--task", "topic"])
    assert failed.exit_code == 2 and "Sports" in failed.output and "Traceback" not in failed.output
