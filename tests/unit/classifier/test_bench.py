"""`finpulse bench classifier --json` on a tiny random model: every contender runs and the keys are there."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from finpulse.cli import app
from tests.unit.classifier.test_onnx import make_tiny


def test_bench_classifier_json_keys(tmp_path: Path) -> None:
    model = make_tiny(tmp_path / "tiny", "bert")
    shared = tmp_path / "shared"
    (shared / "en").mkdir(parents=True)
    tweets = [f"Acme {w} after quarterly results #{i}" for i, w in enumerate(["soars", "sinks", "holds"] * 20)]
    pd.DataFrame({"text": tweets, "label": ["bullish", "bearish", "neutral"] * 20}).to_csv(
        shared / "en/tfns_sentiment_train.csv", index=False
    )
    zh = tmp_path / "zh_eval.csv"
    pd.DataFrame(
        {"text": ["股市大涨", "公司亏损严重", "会议将于周二举行"], "label": ["positive", "negative", "neutral"]}
    ).to_csv(zh, index=False)
    env = {"FINPULSE_DATA_DIR": str(tmp_path / "data"), "FINPULSE_SHARED_DATA_DIR": str(shared)}
    args = ["bench", "classifier", "--model", str(model), "--docs", "40", "--json", "--data", str(zh)]
    args += ["--data", str(shared / "en/tfns_sentiment_train.csv")]
    result = CliRunner().invoke(app, args, env={**env, "FINPULSE_MODEL_THREADS": "1"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("engine_docs_per_s", "pipeline_docs_per_s", "ort_int8_docs_per_s", "speedup", "device", "threads"):
        assert key in report, key
    assert report["device"] == "cpu" and report["threads"] == 1
    assert report["engine_backend"] == "onnx" and report["engine_precision"] in ("fp32", "int8")
    assert min(report["engine_docs_per_s"], report["pipeline_docs_per_s"], report["ort_int8_docs_per_s"]) > 0
    assert set(report["accuracy"]) == {"zh_eval", "tfns_sentiment_train"}
    for scores in report["accuracy"].values():
        assert set(scores) == {"engine", "pipeline", "ort_int8"}
        assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert report["engine_p95_batch_ms"] >= report["engine_p50_batch_ms"] > 0
    profile = report["engine_profile"]
    assert min(profile["tokenize_ms"], profile["inference_ms"]) > 0
    parts = profile["tokenize_ms"] + profile["inference_ms"] + profile["python_ms"]
    assert parts == pytest.approx(profile["total_ms"], abs=0.5)
    assert sum(profile[f"{k}_share"] for k in ("tokenize", "inference", "python")) == pytest.approx(1.0, abs=0.01)
    # No validation split for a random tiny model: the guard could not run, said why, and fp32 is served.
    assert report["engine_guard"]["decision"] == "fp32" == report["engine_precision"]
    assert report["engine_guard"]["reason"]


def test_bench_classifier_rejects_a_missing_data_file(tmp_path: Path) -> None:
    model = make_tiny(tmp_path / "tiny", "bert")
    env = {"FINPULSE_DATA_DIR": str(tmp_path / "data"), "FINPULSE_SHARED_DATA_DIR": str(tmp_path)}
    args = ["bench", "classifier", "--model", str(model), "--json", "--data", str(tmp_path / "nope.csv")]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2 and "no such file" in result.output


def test_bench_texts_by_language(tmp_path: Path) -> None:
    from classifier.bench import bench_texts
    from classifier.data import DataError

    (tmp_path / "zh").mkdir()
    posts = [f"股市大涨第{i}天" for i in range(30)]
    pd.DataFrame({"text": posts, "label": ["positive"] * 30}).to_csv(tmp_path / "zh/finfe_train.csv", index=False)
    picked = bench_texts(tmp_path, 10, "zh")
    assert len(picked) == len(set(picked)) == 10 and set(picked) <= set(posts)
    assert picked == bench_texts(tmp_path, 10, "zh")  # a fixed sample: runs compare the same texts
    with pytest.raises(DataError, match="no benchmark texts"):
        bench_texts(tmp_path, 10, "en")
    with pytest.raises(DataError, match="choose one of en, zh"):
        bench_texts(tmp_path, 10, "fr")
