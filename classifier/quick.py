"""The quick model: TF-IDF word + character n-grams with one linear SVM per head, trained in seconds.

It is what a fresh machine serves within its first minute, while the transformer trains in the background.
Character n-grams need no word segmenter, so one model covers English and Chinese. Probabilities come from the
SVM margins through a softmax whose temperature is fitted on the early-stopping split (a linear SVM has no
probabilities of its own; topic_score, sentiment_score and the probability vectors need them).

Saved without pickle: the vocabularies as JSON, the IDF weights and the coefficients as one ``.npz`` of plain
arrays, so loading a model directory never runs code from it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
import scipy.sparse as sp

from classifier import data as datamod
from classifier.config import TrainingArguments, builtin_recipe
from classifier.metrics import classification_report
from classifier.registry import META_FILE, METRICS_FILE, TRAIN_KEYS_FILE, ModelInfo, Registry
from classifier.specs import BUILTIN_SPECS, TOPICS, DatasetSpec
from classifier.text import clean_text
from finpulse.contracts import SENTIMENTS
from finpulse.settings import Settings

log = logging.getLogger(__name__)

KIND = "linear"
FORMAT_VERSION = 1
ARRAYS_FILE = "quick.npz"
VOCAB_FILE = "vocabulary.json"
# Vocabulary caps keep the model directory to ~20 MB of float32 coefficients.
WORD_PARAMS: dict[str, Any] = {
    "analyzer": "word",
    "ngram_range": (1, 2),
    "min_df": 2,
    "max_features": 80_000,
    "sublinear_tf": True,
    "token_pattern": r"(?u)\b\w+\b",
}
CHAR_PARAMS: dict[str, Any] = {
    "analyzer": "char_wb",
    "ngram_range": (1, 4),
    "min_df": 2,
    "max_features": 160_000,
    "sublinear_tf": True,
}
SVM_C = 0.5
# Characters kept per text: TF-IDF cost is linear in length; financial headlines and posts fit easily.
MAX_CHARS = 2000


def text_language(text: str) -> str:
    """'zh' when CJK ideographs make up a fifth of the letters, else 'en' (the data sets hold only these two)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    return "zh" if cjk >= 0.2 * len(letters) else "en"


def frame_languages(frame: pd.DataFrame) -> list[str]:
    """Each row's language: the loader's ``lang`` column (from the data set spec), else detected per text."""
    if "lang" in frame.columns:
        return [
            str(v) if isinstance(v, str) and v else text_language(str(t))
            for v, t in zip(frame["lang"], frame["text"], strict=True)
        ]
    out = []
    for source, text in zip(frame["source"], frame["text"], strict=True):
        spec = BUILTIN_SPECS.get(source)
        declared = getattr(spec, "lang", None)
        out.append(str(declared) if declared else text_language(str(text)))
    return out


# --- features ------------------------------------------------------------------------------------------------
def _vectorizers() -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return (
        TfidfVectorizer(dtype=np.float32, **WORD_PARAMS),
        TfidfVectorizer(dtype=np.float32, **CHAR_PARAMS),
    )


def _restore_vectorizer(params: dict[str, Any], vocabulary: dict[str, int], idf: np.ndarray) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    params = {**params, "ngram_range": tuple(params["ngram_range"])}
    params.pop("max_features", None)
    params.pop("min_df", None)
    vec = TfidfVectorizer(dtype=np.float32, vocabulary=vocabulary, **params)
    vec.idf_ = idf  # sets up the fitted IDF transformer; the fixed vocabulary needs no fit
    return vec


def _features(vectorizers: Sequence[Any], texts: Sequence[str]) -> sp.csr_matrix:
    blocks = [v.transform(texts) for v in vectorizers]
    matrix = sp.hstack(blocks, format="csr", dtype=np.float32)
    # Both blocks are L2-normalised; halving keeps the stacked row at unit length.
    return matrix * np.float32(1 / np.sqrt(len(blocks)))


def _softmax(margins: np.ndarray, temperature: float) -> np.ndarray:
    z = margins / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _fit_temperature(margins: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature minimising log-loss on held-out rows (grid search: robust, deterministic)."""
    if len(y) == 0:
        return 1.0
    best_t, best_nll = 1.0, float("inf")
    for t in np.geomspace(0.02, 5.0, 60):
        probs = _softmax(margins, float(t))
        nll = -float(np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-9, None))))
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


class _Head:
    """One linear head over the full label space (classes never seen keep a very negative bias)."""

    def __init__(self, labels: Sequence[str], coef: np.ndarray, intercept: np.ndarray, temperature: float):
        self.labels = tuple(labels)
        self.coef = coef.astype(np.float32)
        self.intercept = intercept.astype(np.float32)
        self.temperature = temperature

    def margins(self, x: sp.csr_matrix) -> np.ndarray:
        return np.asarray(x @ self.coef.T) + self.intercept

    def proba(self, x: sp.csr_matrix) -> np.ndarray:
        return _softmax(self.margins(x), self.temperature)


def _fit_head(
    x: sp.csr_matrix,
    y: list[str],
    labels: Sequence[str],
    seed: int,
    x_cal: sp.csr_matrix,
    y_cal: list[str],
    weights: np.ndarray | None = None,
) -> _Head:
    from sklearn.svm import LinearSVC

    index = {name: i for i, name in enumerate(labels)}
    n_features = x.shape[1]
    coef = np.zeros((len(labels), n_features), dtype=np.float32)
    intercept = np.full(len(labels), -10.0, dtype=np.float32)
    present = sorted(set(y), key=index.__getitem__)
    if len(present) == 1:
        intercept[index[present[0]]] = 10.0
    elif present:
        svm = LinearSVC(C=SVM_C, random_state=seed).fit(x, y, sample_weight=weights)
        classes = list(svm.classes_)
        if len(classes) == 2:  # sklearn keeps one margin for two classes: +w for classes[1], -w for classes[0]
            rows = {classes[1]: (svm.coef_[0], svm.intercept_[0]), classes[0]: (-svm.coef_[0], -svm.intercept_[0])}
        else:
            rows = {c: (svm.coef_[i], svm.intercept_[i]) for i, c in enumerate(classes)}
        for label, (w, b) in rows.items():
            coef[index[label]] = w
            intercept[index[label]] = b
    head = _Head(labels, coef, intercept, 1.0)
    cal = [i for i, label in enumerate(y_cal) if label in index]
    if cal and len(present) > 1:
        head.temperature = _fit_temperature(head.margins(x_cal[cal]), np.array([index[y_cal[i]] for i in cal]))
    return head


# --- training ------------------------------------------------------------------------------------------------
def quick_recipe(datasets: Sequence[str]) -> TrainingArguments:
    """The default recipe's data settings (datasets, seed, split fractions): the quick model and the background
    transformer then share one split, so neither trains on the other's promotion or holdout rows."""
    return builtin_recipe("default").replace(datasets=list(datasets))


def split_metrics(
    frame: pd.DataFrame, topic: np.ndarray, sentiment: np.ndarray, languages: Sequence[str]
) -> dict[str, Any]:
    """accuracy / macro-F1 per head, per language x head and per source x head, plus the shadow ``score``.

    score = mean macro-F1 over the (language, head) slices present: each language counts equally, however many
    rows it has, so the Chinese heads weigh as much in a promotion decision as the English ones.
    """
    out: dict[str, Any] = {}
    langs = np.asarray(languages)
    sources = frame["source"].to_numpy()
    slices: list[float] = []
    for head, names, probs in (("sentiment", SENTIMENTS, sentiment), ("topic", TOPICS, topic)):
        index = {name: i for i, name in enumerate(names)}
        labels = frame[head].to_numpy()
        has = np.array([isinstance(v, str) and v in index for v in labels], dtype=bool)
        if not has.any():
            continue
        y = np.array([index[v] if ok else -1 for v, ok in zip(labels, has, strict=True)])
        if head == "topic" and "topics" in frame.columns:
            # Multi-label gold (FinNL): a prediction is right when it is any of the row's mapped gold topics.
            pred = probs.argmax(axis=1)
            for i, gold in enumerate(frame["topics"]):
                if has[i] and isinstance(gold, (tuple, list)) and names[pred[i]] in gold:
                    y[i] = pred[i]
        out[head] = _brief(classification_report(y[has], probs[has], names))
        for lang in sorted(set(langs[has].tolist())):
            sel = has & (langs == lang)
            out[f"{lang}/{head}"] = _brief(classification_report(y[sel], probs[sel], names))
            slices.append(out[f"{lang}/{head}"]["macro_f1"])
        for source in sorted(set(sources[has].tolist())):
            sel = has & (sources == source)
            out[f"{source}/{head}"] = _brief(classification_report(y[sel], probs[sel], names))
            if source == "phrasebank" and "group" in frame:
                agree = sel & (frame["group"] == "100").to_numpy()
                if agree.any():
                    out[f"phrasebank_agree100/{head}"] = _brief(classification_report(y[agree], probs[agree], names))
    out["score"] = float(np.mean(slices)) if slices else 0.0
    return out


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in ("n", "accuracy", "macro_f1", "ece", "per_class")}


def train_quick(
    settings: Settings,
    *,
    datasets: Sequence[str] | None = None,
    data_root: Path | None = None,
    name: str | None = None,
    promote: bool = False,
    echo: Callable[[str], None] | None = None,
    extra_specs: Sequence[DatasetSpec] = (),
    corrections: Sequence[Any] | None = None,
) -> ModelInfo:
    """Train the quick model on every built-in labeled set found (English and Chinese) and save it.

    Analysts' corrections join the training rows (``corrections`` None: read from ClickHouse when it answers;
    see classifier/corrections.py); their held-out share is scored as the "corrections" slice.
    """
    from classifier import corrections as corrmod
    from classifier.train import prepare_splits, row_keys

    say = echo or (lambda message: log.info(message))
    started = time.monotonic()
    now = datetime.now(UTC)
    root = data_root if data_root is not None else settings.shared_data_dir
    sets = list(datasets) if datasets is not None else datamod.available_builtin(root)
    if not sets and not extra_specs:
        raise datamod.DataError(datamod.no_data_message(root))
    args = quick_recipe(sets)
    splits, corr = corrmod.with_corrections(prepare_splits(args, root, extra_specs), settings, corrections, echo=say)
    names = [*sets, *(s.name for s in extra_specs)]
    say(f"quick model: {splits.fingerprint['train_rows']} training rows from {', '.join(names)}")
    texts = [clean_text(t)[:MAX_CHARS] for t in splits.train["text"]]
    word, char = _vectorizers()
    word.fit(texts)
    char.fit(texts)
    vectorizers = (word, char)
    x = _features(vectorizers, texts)
    cal_texts = [clean_text(t)[:MAX_CHARS] for t in splits.early_stop["text"]]
    x_cal = _features(vectorizers, cal_texts)
    heads = {}
    weights = corrmod.sample_weights(splits.train)
    for head, names in (("sentiment", SENTIMENTS), ("topic", TOPICS)):
        rows = splits.train[head].notna().to_numpy()
        cal = splits.early_stop[head].notna().to_numpy()
        heads[head] = _fit_head(
            x[rows],
            splits.train[head][rows].tolist(),
            names,
            args.seed,
            x_cal[cal],
            splits.early_stop[head][cal].tolist(),
            weights[rows],
        )
    train_langs = sorted(set(frame_languages(splits.train)))
    engine = QuickEngine(vectorizers, heads["sentiment"], heads["topic"], {"model_version": "unsaved"})
    metrics: dict[str, Any] = {}
    for split_name, frame in (("promotion", splits.promotion), ("holdout", splits.holdout)):
        if len(frame):
            topic, sentiment, _ = engine.predict_proba(list(frame["text"]))
            metrics[split_name] = split_metrics(frame, topic, sentiment, frame_languages(frame))
    slice_scores = corrmod.score_slice(engine, corr.slice)
    elapsed = time.monotonic() - started

    name = name or f"finpulse-quick-{now:%Y%m%d-%H%M%S}"
    registry = Registry.from_settings(settings)
    registry.root.mkdir(parents=True, exist_ok=True)
    staging = registry.staging_dir(name)
    _save(staging, vectorizers, heads)
    corrmod.save_slice(staging, corr.slice)
    np.save(staging / TRAIN_KEYS_FILE, row_keys(list(splits.train["text"])))
    args.save(staging / "training_args.json")
    fingerprint = {**splits.fingerprint, "training": {"wall_time_s": round(elapsed, 1), "kind": KIND}}
    (staging / "data.json").write_text(json.dumps(fingerprint, indent=2) + "\n", encoding="utf-8")
    # metrics.json: the promotion split's figures at top level (what `finpulse models list` shows) + the holdout.
    flat = {**metrics.get("promotion", {}), "holdout": metrics.get("holdout", {}), "corrections": slice_scores}
    (staging / METRICS_FILE).write_text(json.dumps(flat, indent=2) + "\n", encoding="utf-8")
    digest = datamod.file_sha256(staging / ARRAYS_FILE)
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "name": name,
        "model_version": f"{name}@{digest[:12]}",
        "created_at": now.isoformat(timespec="seconds"),
        "base_model": "tfidf-char-word+linear-svm",
        "languages": train_langs,
        "strip_urls": True,
        "topics": list(TOPICS),
        "sentiments": list(SENTIMENTS),
        "weights_sha256": digest,
        "validation": {k: _headline(v) for k, v in metrics.items()},
        "corrections": {**corr.summary, "slice": slice_scores},
    }
    (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    card = model_card(meta, fingerprint, metrics) + corrmod.card_section({**corr.summary, "slice": slice_scores})
    (staging / "README.md").write_text(card, encoding="utf-8")
    info = registry.commit(staging, name)
    if promote:
        info = registry.promote(name)
    log.info("quick model trained", extra={"model": name, "wall_time_s": round(elapsed, 1)})
    say(f"quick model {name} trained in {elapsed:.1f} s" + (" and promoted" if promote else ""))
    return info


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: {"n": v["n"], "accuracy": round(v["accuracy"], 4), "macro_f1": round(v["macro_f1"], 4)}
        for k, v in metrics.items()
        if isinstance(v, dict) and "accuracy" in v
    }
    out["score"] = round(metrics.get("score", 0.0), 4)
    return out


def _save(folder: Path, vectorizers: Sequence[Any], heads: dict[str, _Head]) -> None:
    word, char = vectorizers
    vocab = {
        "word": {k: int(v) for k, v in word.vocabulary_.items()},
        "char": {k: int(v) for k, v in char.vocabulary_.items()},
        "word_params": {k: v for k, v in WORD_PARAMS.items()},
        "char_params": {k: v for k, v in CHAR_PARAMS.items()},
        "temperature": {h: heads[h].temperature for h in heads},
    }
    (folder / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    np.savez_compressed(
        folder / ARRAYS_FILE,
        word_idf=word.idf_.astype(np.float32),
        char_idf=char.idf_.astype(np.float32),
        sentiment_coef=heads["sentiment"].coef,
        sentiment_intercept=heads["sentiment"].intercept,
        topic_coef=heads["topic"].coef,
        topic_intercept=heads["topic"].intercept,
    )


def model_card(meta: dict[str, Any], prints: dict[str, Any], metrics: dict[str, Any]) -> str:
    sets = ", ".join(f"{k} ({v.get('rows')} rows)" for k, v in prints["datasets"].items())
    lines = [
        f"# {meta['name']}",
        "",
        "FinPulse quick model: TF-IDF word 1-2-grams + character 1-4-grams, one linear SVM per head (20 Twitter "
        "Financial News topics; negative / neutral / positive), softmax-calibrated margins. Trained in seconds so "
        "that a fresh machine labels documents in its first minute; the background transformer replaces it when "
        "it scores better on the promotion split.",
        "",
        f"- model_version: `{meta['model_version']}`",
        f"- languages: {', '.join(meta['languages'])} (other languages are stored unlabeled)",
        f"- training data: {sets}; "
        f"{prints['train_rows']} train rows; {prints['promotion_rows']} promotion and {prints['holdout_rows']} "
        "holdout rows never trained on",
        f"- training: {prints['training']['wall_time_s']} s",
        "",
    ]
    for split, values in metrics.items():
        lines += [f"## {split} split", "", "| slice | n | accuracy | macro-F1 |", "|---|---|---|---|"]
        lines += [
            f"| {key} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |"
            for key, m in values.items()
            if isinstance(m, dict) and "accuracy" in m
        ]
        lines += ["", f"score (mean macro-F1 over language x head): {values.get('score', 0.0):.4f}", ""]
    return "\n".join(lines)


# --- serving -------------------------------------------------------------------------------------------------
class QuickEngine:
    """The quick model behind ClassifierEngine's API: predict, predict_proba, model_version, languages."""

    def __init__(self, vectorizers: Sequence[Any], sentiment: _Head, topic: _Head, meta: dict[str, Any]) -> None:
        self.vectorizers = tuple(vectorizers)
        self.sentiment_head = sentiment
        self.topic_head = topic
        self.meta = meta
        self.model_version: str = meta["model_version"]
        self.languages: tuple[str, ...] = tuple(meta.get("languages", ["en"]))
        self.strip_urls: bool = bool(meta.get("strip_urls", True))
        self.topics: tuple[str, ...] = topic.labels
        self.sentiments: tuple[str, ...] = sentiment.labels
        self._pos = self.sentiments.index("positive")
        self._neg = self.sentiments.index("negative")
        self._lock = threading.Lock()  # one caller at a time, like ClassifierEngine

    @classmethod
    def load(cls, path: Path | str) -> QuickEngine:
        from classifier.model import ModelLoadError

        path = Path(path)
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            vocab = json.loads((path / VOCAB_FILE).read_text(encoding="utf-8"))
            with np.load(path / ARRAYS_FILE, allow_pickle=False) as arrays:
                word = _restore_vectorizer(vocab["word_params"], vocab["word"], arrays["word_idf"])
                char = _restore_vectorizer(vocab["char_params"], vocab["char"], arrays["char_idf"])
                heads = {
                    h: _Head(
                        meta[h + "s"] if h == "sentiment" else meta["topics"],
                        arrays[f"{h}_coef"],
                        arrays[f"{h}_intercept"],
                        float(vocab["temperature"][h]),
                    )
                    for h in ("sentiment", "topic")
                }
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ModelLoadError(f"{path} is not a loadable quick model: {exc}") from exc
        n_features = len(vocab["word"]) + len(vocab["char"])
        for h in heads.values():
            if h.coef.shape != (len(h.labels), n_features):
                raise ModelLoadError(f"{path}: coefficient shape {h.coef.shape} does not match the vocabulary")
        return cls((word, char), heads["sentiment"], heads["topic"], meta)

    def supports_language(self, lang: str | None) -> bool:
        """Whether documents in ``lang`` get labels; 'und'/None count as supported (most feeds omit it)."""
        if not lang or lang == "und":
            return True
        return lang.split("-")[0].lower() in self.languages

    @overload
    def predict(self, texts: str) -> Any: ...
    @overload
    def predict(self, texts: Sequence[str]) -> list[Any]: ...
    def predict(self, texts: str | Sequence[str]) -> Any:
        from classifier.engine import predictions

        if isinstance(texts, str):
            return self.predict([texts])[0]
        return predictions(self.topics, self.sentiments, *self.predict_proba(texts))

    def predict_proba(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Topic probabilities (n, 20), sentiment probabilities (n, 3) and a truncated flag (n,)."""
        from classifier.engine import InputError

        if isinstance(texts, (str, bytes)):
            raise InputError(0, texts) if isinstance(texts, bytes) else TypeError("pass a list of texts")
        cleaned, truncated = [], np.zeros(len(texts), dtype=bool)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(i, text)
            clean = clean_text(text[: MAX_CHARS * 4], self.strip_urls)
            truncated[i] = len(clean) > MAX_CHARS
            cleaned.append(clean[:MAX_CHARS])
        if not cleaned:
            return (
                np.zeros((0, len(self.topics)), np.float32),
                np.zeros((0, len(self.sentiments)), np.float32),
                truncated,
            )
        with self._lock:
            x = _features(self.vectorizers, cleaned)
            return self.topic_head.proba(x), self.sentiment_head.proba(x), truncated

    def close(self) -> None:
        """Nothing to release (no threads, no device memory)."""
