"""The ONNX serving path stays light: no torch (nor transformers) in a process that serves an export, the export
itself in child processes, and a tokenizer that gives exactly transformers' ids without importing it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier import model as torch_model
from classifier import onnx_export
from classifier.engine import ClassifierEngine
from classifier.model import load_tokenizer
from classifier.onnx_prepare import prepare
from classifier.rust_tokenizer import RustTokenizer
from tests.unit.classifier.test_onnx import TEXTS, make_tiny

ROOT = Path(__file__).resolve().parents[3]

# Loads a model folder the way the stream worker does (serving.load_engine), classifies, and reports what the
# process imported; run in a fresh interpreter, since this test process has torch loaded already.
_SERVE = """
import json, sys
from pathlib import Path
from classifier.serving import load_engine
engine = load_engine(Path(sys.argv[1]), None, "cpu", threads=1, precision=sys.argv[2])
topic, sentiment, truncated = engine.predict_proba(json.loads(sys.argv[3]))
print(json.dumps({
    "backend": engine.backend, "precision": engine.precision, "guard": engine.guard,
    "sentiment": sentiment.tolist(), "truncated": truncated.tolist(),
    "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules,
}))
"""


def _serve(model_dir: Path, precision: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _SERVE, str(model_dir), precision, json.dumps(TEXTS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_serving_an_onnx_model_never_imports_torch(tmp_path: Path) -> None:
    model_dir = make_tiny(tmp_path / "m", "xlm-roberta")
    # First load: no export yet. It is made in child processes; the serving process still never imports torch.
    first = _serve(model_dir, "auto")
    assert (first["backend"], first["torch"], first["transformers"]) == ("onnx", False, False)
    # No shared data (no settings): the guard cannot run, says why, and fp32 is served.
    assert first["precision"] == "fp32" and "no shared data dir" in first["guard"]["reason"]
    artifacts = onnx_export.locate(model_dir)
    assert artifacts.fp32.is_file() and artifacts.int8.is_file()
    # Cached export, int8 asked for by name: the same, and the answers match torch's.
    cached = _serve(model_dir, "int8")
    assert (cached["precision"], cached["torch"], cached["transformers"]) == ("int8", False, False)
    reference = ClassifierEngine.load(model_dir, device="cpu", threads=1, backend="torch", precision="fp32")
    want = reference.predict_proba(TEXTS)
    np.testing.assert_allclose(np.array(first["sentiment"]), want[1], atol=1e-4)
    assert np.abs(np.array(cached["sentiment"]) - want[1]).max() < 0.1
    assert first["truncated"] == want[2].tolist()


def test_prepare_reports_a_failed_export_clearly(tmp_path: Path) -> None:
    model_dir = make_tiny(tmp_path / "m", "bert")
    (model_dir / "config.json").write_text("{not json", encoding="utf-8")  # the child cannot load the model
    with pytest.raises(onnx_export.ExportError, match=r"ONNX export of .* failed \(exit 1\)"):
        prepare(model_dir, guard=False)
    assert not onnx_export.locate(model_dir).fp32.exists()


def test_rust_tokenizer_gives_transformers_ids(tmp_path: Path) -> None:
    model_dir = make_tiny(tmp_path / "m", "bert")
    hf, rust = load_tokenizer(model_dir), RustTokenizer.load(model_dir)
    assert rust.pad_token_id == hf.pad_token_id
    texts = [*TEXTS, "Straße ÄÖ émoji 😀 $ACME +5.2%", "  spaced   out  "]
    options = {"padding": "longest", "truncation": True, "max_length": 16}
    want = hf(texts, **options, return_tensors="np", return_token_type_ids=False)
    got = rust(texts, **options)
    np.testing.assert_array_equal(got["input_ids"], want["input_ids"])
    np.testing.assert_array_equal(got["attention_mask"], want["attention_mask"])
    assert got["input_ids"].dtype == np.int64 and got["input_ids"].shape[1] == 16
    np.testing.assert_array_equal(rust([""])["input_ids"], hf([""], return_tensors="np")["input_ids"])
    with pytest.raises(ValueError, match="padding='longest'"):
        rust(["a", "a much longer text than the first"])
    with pytest.raises(ValueError, match="only the batch's longest row"):
        rust(["a"], padding="max_length")


def test_export_names_match_the_model_module() -> None:
    # onnx_export names these files itself (importing classifier.model would import torch); they must agree.
    assert (onnx_export.WEIGHTS_FILE, onnx_export.HEADS_FILE) == (torch_model.WEIGHTS_FILE, torch_model.HEADS_FILE)
