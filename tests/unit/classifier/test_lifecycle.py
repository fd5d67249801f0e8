"""Train (tiny) -> save -> reload -> evaluate -> serve, through the same code paths as production."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from classifier.bootstrap import ensure_default_model
from classifier.engine import ClassifierEngine, InputError
from classifier.model import MultiTaskClassifier, SentimentSequenceClassifier, load_tokenizer
from classifier.registry import Registry
from classifier.train import collate
from finpulse.cli import app
from finpulse.settings import load_settings

TEXTS = [
    "Acme shares soar after record profit https://t.co/abc",
    "Globex shares plunge after profit warning",
    "Hooli to hold annual meeting on Tuesday",
    "Initech declares quarterly dividend of 12 cents",
]


@pytest.fixture(scope="module")
def engine(trained: dict) -> ClassifierEngine:
    return ClassifierEngine.load(trained["model"], device="cpu", threads=1)


def test_model_directory_contents(trained: dict) -> None:
    model = trained["model"]
    names = {p.name for p in model.iterdir()}
    expected = {"model.safetensors", "config.json", "heads.json", "tokenizer.json", "training_args.json"}
    assert expected | {"data.json", "metrics.json", "meta.json", "README.md"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    meta = json.loads((model / "meta.json").read_text())
    assert meta["model_version"].startswith("tiny@") and meta["languages"] == ["en"]
    prints = json.loads((model / "data.json").read_text())
    assert set(prints["datasets"]) == {"tfns_sentiment", "tfns_topic", "phrasebank"}
    assert len(prints["datasets"]["tfns_sentiment"]["sha256"]) == 64
    assert prints["training"]["steps"] == 24
    metrics = json.loads((model / "metrics.json").read_text())
    assert {"sentiment", "topic", "phrasebank_agree100/sentiment"} <= set(metrics)
    assert "tiny" in (model / "README.md").read_text()


def test_tiny_model_learned_the_synthetic_signal(trained: dict) -> None:
    metrics = json.loads((trained["model"] / "metrics.json").read_text())
    # Chance is 1/3 (sentiment) and 1/4 (topic); these templates are easy, so a working trainer beats it clearly.
    assert metrics["sentiment"]["accuracy"] > 0.6
    assert metrics["topic"]["accuracy"] > 0.6


def test_reload_matches_engine(trained: dict, engine: ClassifierEngine) -> None:
    model = MultiTaskClassifier.load(trained["model"])
    tokenizer = load_tokenizer(trained["model"])
    ids = [np.array(x) for x in tokenizer([t.replace("https://t.co/abc", "").strip() for t in TEXTS])["input_ids"]]
    with torch.inference_mode():
        _, s_logits = model(*collate(ids, tokenizer.pad_token_id))
    expected = torch.softmax(s_logits, -1).numpy()
    _, sentiment, _ = engine.predict_proba(TEXTS)
    tolerance = 0.05 if engine.dtype == torch.bfloat16 else 1e-4
    np.testing.assert_allclose(sentiment, expected, atol=tolerance)


def test_pipeline_view_shares_weights(trained: dict) -> None:
    from transformers import pipeline

    model = MultiTaskClassifier.load(trained["model"])
    view = SentimentSequenceClassifier.from_multitask(model)
    assert view.encoder is model.encoder and view.head is model.sentiment_head
    pipe = pipeline("text-classification", model=view, tokenizer=load_tokenizer(trained["model"]), device="cpu")
    tokenizer = load_tokenizer(trained["model"])
    batch = tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.inference_mode():
        _, s_logits = model(batch["input_ids"], batch["attention_mask"])
    labels = [model.sentiments[i] for i in s_logits.argmax(-1).tolist()]
    assert [r["label"] for r in pipe(TEXTS[:2], batch_size=64)] == labels


def test_engine_predictions(engine: ClassifierEngine) -> None:
    preds = engine.predict(TEXTS)
    assert len(preds) == 4
    for p in preds:
        assert p.sentiment in ("negative", "neutral", "positive")
        assert sum(p.sentiment_probs.values()) == pytest.approx(1.0, abs=1e-3)
        assert sum(p.topic_probs.values()) == pytest.approx(1.0, abs=1e-3)
        expected = p.sentiment_probs["positive"] - p.sentiment_probs["negative"]
        assert p.sentiment_score == pytest.approx(expected, abs=1e-6)
        assert p.topic_score == max(p.topic_probs.values())
    single = engine.predict(TEXTS[1])
    assert single.sentiment == preds[1].sentiment and single.topic == preds[1].topic
    assert engine.model_version.startswith("tiny@")
    assert engine.languages == ("en",)
    assert engine.supports_language("en-GB") and not engine.supports_language("zh")


def test_engine_order_is_restored_across_batches(trained: dict) -> None:
    # A tiny token budget forces many length-sorted batches; results must come back in the caller's order.
    small = ClassifierEngine.load(trained["model"], device="cpu", threads=1, max_batch_tokens=40, precision="fp32")
    texts = [TEXTS[i % 4] + " and more" * (i % 7) for i in range(40)]
    one_by_one = np.stack([small.predict_proba([t])[1][0] for t in texts])
    together = small.predict_proba(texts)[1]
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)


def test_engine_edge_cases(engine: ClassifierEngine) -> None:
    long_text = "Acme profit " * 20_000
    preds = engine.predict(["", "   \n\t", long_text, "ok"])
    assert [p.truncated for p in preds] == [False, False, True, False]
    assert preds[0].sentiment_probs == preds[1].sentiment_probs  # whitespace-only is the empty text
    assert engine.predict([]) == []
    for bad in ([None], ["ok", 3], [b"bytes"], ["ok", float("nan")]):
        with pytest.raises(InputError, match=r"texts\[\d\] is"):
            engine.predict(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        engine.predict_proba("not a list")  # type: ignore[arg-type]


def test_engine_is_thread_safe(engine: ClassifierEngine) -> None:
    expected = [p.sentiment_probs for p in engine.predict(TEXTS)]
    errors: list[BaseException] = []
    results: list[list] = []

    def worker() -> None:
        try:
            for _ in range(3):
                results.append([p.sentiment_probs for p in engine.predict(TEXTS)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 12 and all(r == expected for r in results)


def test_int8_cpu_path(trained: dict, engine: ClassifierEngine) -> None:
    quantized = ClassifierEngine.load(trained["model"], device="cpu", threads=1, int8=True)
    a, b = engine.predict_proba(TEXTS)[1], quantized.predict_proba(TEXTS)[1]
    assert np.abs(a - b).max() < 0.1


def test_evaluate_cli_json_and_png(trained: dict, tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    pd.DataFrame({"text": TEXTS[:3], "label": ["bullish", "bearish", "neutral"]}).to_csv(path, index=False)
    plot = tmp_path / "cm.png"
    args = ["evaluate", "--model", "tiny", "--data", str(path), "--task", "sentiment", "--json", "--plot", str(plot)]
    result = CliRunner().invoke(app, args, env=trained["env"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 3 and 0.0 <= report["accuracy"] <= 1.0 and "macro_f1" in report
    assert np.array(report["confusion"]).sum() == 3
    assert plot.read_bytes()[:4] == b"\x89PNG"
    topic_csv = tmp_path / "topic.csv"
    pd.DataFrame({"text": [TEXTS[3]], "label": ["dividend"]}).to_csv(topic_csv, index=False)
    result = CliRunner().invoke(
        app, ["evaluate", "-m", "promoted", "--data", str(topic_csv), "--task", "topic"], env=trained["env"]
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "Dividend" in result.output


def test_evaluate_rejects_unknown_labels(trained: dict, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"text": ["x"], "label": ["sideways"]}).to_csv(path, index=False)
    result = CliRunner().invoke(app, ["evaluate", "-m", "tiny", "--data", str(path), "--json"], env=trained["env"])
    assert result.exit_code == 2 and "unknown sentiment label(s)" in result.output and "'sideways'" in result.output


def test_models_cli(trained: dict) -> None:
    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["models", "list", "--json"], env=trained["env"]).stdout)
    assert [m["name"] for m in listed] == ["tiny"] and listed[0]["promoted"]
    assert runner.invoke(app, ["models", "promote", "tiny"], env=trained["env"]).exit_code == 0
    missing = runner.invoke(app, ["models", "promote", "nope"], env=trained["env"])
    assert missing.exit_code == 2 and "no model 'nope'" in missing.output


def test_validation_export_matches_fingerprint(trained: dict, data_root: Path, tmp_path: Path) -> None:
    from classifier.validation import export_validation

    written = export_validation(trained["model"], tmp_path / "val", data_root)
    assert {"tfns_sentiment_sentiment", "tfns_topic_topic", "phrasebank_agree100_sentiment"} <= set(written)
    prints = json.loads((trained["model"] / "data.json").read_text())
    rows = sum(len(pd.read_csv(p)) for k, p in written.items() if k != "phrasebank_agree100_sentiment")
    assert rows == prints["validation_rows"]


def test_ensure_default_model(trained: dict, tmp_path: Path) -> None:
    settings = load_settings(data_dir=trained["data_dir"])
    info = ensure_default_model(settings, progress=False)  # a model is promoted: no training
    assert info.name == "tiny" and info.promoted
    empty = load_settings(data_dir=tmp_path / "fresh", shared_data_dir=tmp_path / "no-data")
    messages: list[str] = []
    placeholder = ensure_default_model(empty, progress=False, echo=messages.append)  # no data: up still starts
    assert placeholder.kind == "none" and "FINPULSE_SHARED_DATA_DIR" in messages[0]
    assert Registry.from_settings(empty).promoted().kind == "none"  # type: ignore[union-attr]


def test_train_refuses_unknown_dataset_cleanly(trained: dict) -> None:
    result = CliRunner().invoke(app, ["train", "--datasets", "nope"], env=trained["env"])
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.output


def test_bench_reports_both_paths(trained: dict, data_root: Path) -> None:
    from classifier.bench import bench_texts, run_bench

    texts = bench_texts(data_root, 96)
    result = run_bench(trained["model"], texts, device="cpu", threads=1)
    for key in ("engine_docs_per_s", "pipeline_docs_per_s", "speedup", "device", "engine_p95_batch_ms"):
        assert key in result
    assert result["engine_docs_per_s"] > 0 and result["pipeline_docs_per_s"] > 0
    assert result["sentiment_agreement"] > 0.9  # same weights: only precision differs


def test_train_on_own_file_with_column_mapping(trained: dict, data_root: Path, tmp_path: Path) -> None:
    own = tmp_path / "own.jsonl"
    frame = pd.read_csv(data_root / "en/tfns_sentiment_train.csv").rename(columns={"text": "body", "label": "mood"})
    frame.head(80).to_json(own, orient="records", lines=True)
    args = ["train", "--data", str(own), "--task", "sentiment", "--text-column", "body", "--label-column", "mood"]
    args += ["--max-steps", "2", "--name", "own"]
    result = CliRunner().invoke(app, args, env=trained["env"])
    assert result.exit_code == 0, result.output
    prints = json.loads((trained["data_dir"] / "models" / "own" / "data.json").read_text())
    assert list(prints["datasets"]) == ["file:own.jsonl"] and prints["training"]["steps"] == 2
    assert Registry(trained["data_dir"] / "models").promoted().name == "tiny"  # type: ignore[union-attr]
