"""The quick entity model: marked-mention TF-IDF features (features.py) with two linear-SVM heads, sentiment
toward the entity (negative / neutral / positive) and relevance (is the document about it?), probabilities from a
softmax of the margins with a temperature fitted on the early-stopping split (as the quick document model does).

Trained in seconds on FiQA + FinNSP (convert.py). FiQA has 937 rows; to give the English sentiment words more
evidence, a document-level sentiment SVM is fitted on PhraseBank + TFNS sentiment (minus any text that is also
an entity row) and its three margins are stacked as features of English pairs (stacking: the entity head learns
how far to trust the document's tone). FinNSP's not_negative trains the sentiment head as neutral: FinNSP has no
positive label, so Chinese entity sentiment is negative vs not (neutral). The holdout split is only scored.
Saved without pickle (vocabularies JSON + ``.npz``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from classifier import data as datamod
from classifier.entity import convert, features
from classifier.entity.scoring import brief, relevance_figures, score_predictions
from classifier.entity.tuned import WEIGHTS_FILE as TUNED_WEIGHTS
from classifier.registry import META_FILE, METRICS_FILE, ModelInfo, Registry
from finpulse.contracts import SENTIMENTS

log = logging.getLogger(__name__)

KIND = "entity-linear"
FORMAT_VERSION = 1
ARRAYS_FILE = "entity.npz"
VOCAB_FILE = "vocabulary.json"
SPLITS_DIR = "splits"
TUNED_DIR = "tuned"  # the fine-tuned pair classifier (tuned.py), when trained
SENTIMENT_C = 0.3
RELEVANCE_C = 0.3
AUX_C = 0.5
AUX_WEIGHT = 1.0
AUX_FILES = ("en/phrasebank_train.csv", "en/tfns_sentiment_train.csv")
SEED = 42
RELEVANCE_CLASSES = ("not", "about")
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # pair classifier's share of English sentiment, chosen on val
EMBED_WEIGHT = 1.0  # scale of the (unit-norm) pair embedding beside the TF-IDF blocks (~unit norm together)


def entity_registry(settings: Any) -> Registry:
    """Entity models live in their own registry folder (own PROMOTED) beside the document models."""
    return Registry(Path(settings.registry_dir) / "entity", train_command="finpulse train --task entity")


def training_label(label: object) -> str | None:
    if label in SENTIMENTS:
        return str(label)
    return "neutral" if label == convert.NOT_NEGATIVE else None


def _others(value: object) -> list[str]:
    return convert.split_entities(value)


def mark_rows(rows: pd.DataFrame) -> list[features.Marked]:
    return [
        features.mark(str(t), str(e), _others(o))
        for t, e, o in zip(rows["text"], rows["entity"], rows["entities"], strict=True)
    ]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _fit_svm(x: Any, y: Sequence[str], classes: Sequence[str], c: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A linear SVM as full (len(classes), F) margins; absent classes keep a very negative bias."""
    from sklearn.svm import LinearSVC

    index = {name: i for i, name in enumerate(classes)}
    coef = np.zeros((len(classes), x.shape[1]), dtype=np.float32)
    intercept = np.full(len(classes), -10.0, dtype=np.float32)
    present = sorted(set(y), key=index.__getitem__)
    if len(present) == 1:
        intercept[index[present[0]]] = 10.0
        return coef, intercept
    svm = LinearSVC(C=c, random_state=seed, max_iter=5000).fit(x, list(y))
    fitted = list(svm.classes_)
    if len(fitted) == 2:  # one margin w.x + b for classes[1]; classes[0] gets the mirror image
        rows = {fitted[0]: (-svm.coef_[0], -svm.intercept_[0]), fitted[1]: (svm.coef_[0], svm.intercept_[0])}
    else:
        rows = {name: (svm.coef_[i], svm.intercept_[i]) for i, name in enumerate(fitted)}
    for name, (w, b) in rows.items():
        coef[index[name]] = w
        intercept[index[name]] = b
    return coef, intercept


def _temperature(margins: np.ndarray, labels: Sequence[str], classes: Sequence[str]) -> float:
    from classifier.quick import _fit_temperature

    index = {name: i for i, name in enumerate(classes)}
    keep = [i for i, label in enumerate(labels) if label in index]
    if not keep:
        return 1.0
    return _fit_temperature(margins[keep], np.array([index[labels[i]] for i in keep]))


def aux_rows(root: Path, exclude: set[str]) -> tuple[list[str], list[str]]:
    """English document-level sentiment rows (PhraseBank, TFNS sentiment) whose text is not an entity row."""
    texts, labels = [], []
    for name in AUX_FILES:
        path = root / name
        if not path.is_file():
            continue
        table = datamod.read_table(path)
        for text, label in zip(table["text"].astype(str), table["label"], strict=True):
            mapped = convert.normalise_entity_label(label)
            if mapped in SENTIMENTS and text.casefold().strip() not in exclude:
                texts.append(text)
                labels.append(mapped)
    return texts, labels


def _selection_score(rows: pd.DataFrame, sentiment: np.ndarray) -> float:
    scores = []
    for source in sorted(set(rows["source"])):
        sel = (rows["source"] == source).to_numpy()
        report = score_predictions(rows["label"][sel].tolist(), sentiment[sel])
        scores.append(report["negative_f1"] if report["mode"] == "negative_vs_not" else report["accuracy"])
    return float(np.mean(scores)) if scores else 0.0


def split_report(rows: pd.DataFrame, sentiment: np.ndarray, relevance: np.ndarray) -> dict[str, Any]:
    """Figures per source (fiqa: three-class; finnsp: negative vs not) and relevance, on one split."""
    out: dict[str, Any] = {}
    labeled = rows["label"].notna().to_numpy()
    for source in sorted(set(rows["source"])):
        sel = labeled & (rows["source"] == source).to_numpy()
        if sel.any():
            out[source] = brief(score_predictions(rows["label"][sel].tolist(), sentiment[sel]))
        rel = (rows["source"] == source).to_numpy()
        figures = relevance_figures(rows["relevance"][rel].tolist(), relevance[rel])
        if figures:
            out[f"{source}/relevance"] = figures
    return out


def train_entity(
    settings: Any,
    *,
    data_root: Path | None = None,
    rows: pd.DataFrame | None = None,
    name: str | None = None,
    promote: bool = False,
    seed: int = SEED,
    embed_base: str | None = None,
    tune_base: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> ModelInfo:
    """Train the entity model on FiQA + FinNSP (or on ``rows``: convert's columns + ``split``), save it to
    the entity registry and optionally promote it. ``embed_base``: a base encoder (see classifier.bases) whose
    frozen pair embeddings (embed.py) join the TF-IDF features of English pairs; ``tune_base``: a base fine-tuned
    as a pair classifier (tuned.py) whose English sentiment is blended with the linear head's (weight chosen on
    the early-stopping split); both None: TF-IDF only (quick)."""
    say = echo or (lambda message: log.info(message))
    started = time.monotonic()
    now = datetime.now(UTC)
    root = Path(data_root if data_root is not None else settings.shared_data_dir or ".")
    if rows is None:
        rows = convert.builtin_rows(root, seed)
    elif "split" not in rows.columns:
        rows = convert.add_absent(rows, seed)
    parts = {s: rows[rows["split"] == s].reset_index(drop=True) for s in convert.SPLITS}
    train = parts["train"]
    if train.empty:
        raise datamod.DataError("no entity training rows")
    by_source = ", ".join(f"{k} {v}" for k, v in convert.label_counts(train["source"]).items())
    say(
        f"entity model: {len(train)} training pairs ({by_source}); "
        f"{len(parts['val'])} early-stopping and {len(parts['holdout'])} holdout pairs"
    )
    marked = {s: mark_rows(frame) for s, frame in parts.items()}
    vecs = features.vectorizers(len(train))
    train_docs = [features.doc_text(t) for t in dict.fromkeys(train["text"])]
    train_doc_x = [vecs[block].fit_transform(train_docs) for block in features.DOC_BLOCKS]  # analysed once
    for block in features.PAIR_BLOCKS:
        features.fit_block(vecs[block], features.pair_view(block, marked["train"]))
    aux_texts, aux_labels = aux_rows(root, {str(t).casefold().strip() for t in rows["text"]})
    aux_docs = [features.doc_text(t) for t in aux_texts]
    if aux_docs:  # fit_transform: each text is analysed once
        aux_x = _scale_aux([vecs[b].fit_transform(aux_docs) for b in features.AUX_BLOCKS])
    else:
        for block in features.AUX_BLOCKS:
            features.fit_block(vecs[block], aux_docs)
    n_aux = sum(len(vecs[b].vocabulary_) for b in features.AUX_BLOCKS)
    aux_coef, aux_intercept = np.zeros((len(SENTIMENTS), n_aux), np.float32), np.zeros(len(SENTIMENTS), np.float32)
    if aux_texts:
        aux_coef, aux_intercept = _fit_svm(aux_x, aux_labels, SENTIMENTS, AUX_C, seed)
        say(f"  document-level English sentiment (stacked): {len(aux_texts)} rows from {', '.join(AUX_FILES)}")
    embedder = None
    if embed_base:
        from classifier.entity.embed import PairEmbedder

        embedder = PairEmbedder(embed_base)
        say(f"  pair embeddings: {embed_base} (frozen, {embedder.dim} dims, max {embedder.max_length} tokens)")
    engine = EntityEngine(
        vecs,
        {"aux": (aux_coef, aux_intercept, 1.0)},
        {"model_version": "unsaved", "languages": sorted(set(train["lang"].dropna()))},
        embedder=embedder,
    )
    embed_started = time.monotonic()
    x = {
        s: engine.pair_matrix(
            list(parts[s]["text"]),
            marked[s],
            train_doc_x if s == "train" else None,
            entities=list(parts[s]["entity"]),
            progress=say,
        )
        if len(parts[s])
        else None
        for s in parts
    }
    embed_s = time.monotonic() - embed_started
    val = parts["val"]
    heads: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for head, column, classes, to_label, c in (
        ("sentiment", "label", SENTIMENTS, training_label, SENTIMENT_C),
        ("relevance", "relevance", RELEVANCE_CLASSES, _relevance_label, RELEVANCE_C),
    ):
        labels = [to_label(v) for v in train[column]]
        keep = np.array([v is not None for v in labels], dtype=bool)
        coef, intercept = _fit_svm(x["train"][keep], [v for v in labels if v is not None], classes, c, seed)
        temperature = 1.0
        if x["val"] is not None:
            val_labels = [to_label(v) for v in val[column]]
            temperature = _temperature(np.asarray(x["val"] @ coef.T) + intercept, val_labels, classes)
        heads[head] = (coef, intercept, temperature)
        say(f"  {head} head: {int(keep.sum())} pairs, C={c}, temperature {temperature:.3f}")
    engine.heads.update(heads)
    tuned_report = None
    if tune_base:
        tuned_report = _tune(engine, parts, x["val"], aux_texts, aux_labels, tune_base, seed, say)
    metrics: dict[str, Any] = {}
    for split in ("val", "holdout"):
        if x[split] is not None:
            s_probs, r_probs = engine.proba_matrix(x[split])
            s_probs = engine.blend(list(parts[split]["text"]), list(parts[split]["entity"]), s_probs)
            metrics[split] = split_report(parts[split], s_probs, r_probs)
    elapsed = time.monotonic() - started

    name = name or f"finpulse-entity-{now:%Y%m%d-%H%M%S}"
    registry = entity_registry(settings)
    registry.root.mkdir(parents=True, exist_ok=True)
    staging = registry.staging_dir(name)
    _save(staging, vecs, engine.heads)
    if engine.tuned is not None:
        engine.tuned.save(staging / TUNED_DIR)
    # the held-out pairs as (text, entity, label) files for `finpulse evaluate --task entity` (in the data dir,
    # never in the repository)
    for source in sorted(set(parts["holdout"]["source"])):
        convert.write_rows(
            parts["holdout"][parts["holdout"]["source"] == source], staging / SPLITS_DIR / f"{source}_holdout.csv"
        )
    digest = _weights_digest(staging)
    data_info = {
        "seed": seed,
        "split_fractions": list(convert.SPLIT_FRACTIONS),
        "fiqa_thresholds": {
            "negative_below": convert.FIQA_NEGATIVE_BELOW,
            "positive_above": convert.FIQA_POSITIVE_ABOVE,
        },
        "rows": {s: convert.label_counts(p["source"]) for s, p in parts.items()},
        "labels_train": convert.label_counts(train["label"]),
        "sentiment_c": SENTIMENT_C,
        "relevance_c": RELEVANCE_C,
        "aux_rows": len(aux_texts),
        "embedder": embedder.describe() if embedder is not None else None,
        "pair_classifier": tuned_report,
        "features_s": round(embed_s, 1),
        "wall_time_s": round(elapsed, 1),
    }
    (staging / "data.json").write_text(json.dumps(data_info, indent=2) + "\n", encoding="utf-8")
    (staging / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "name": name,
        "model_version": f"{name}@{digest[:12]}",
        "created_at": now.isoformat(timespec="seconds"),
        "base_model": "marked-mention-tfidf+linear-svm"
        + (f"+{embed_base}-pair-embedding" if embedder else "")
        + (f"+{tune_base}-pair-classifier" if engine.tuned is not None else ""),
        "embedder": {**embedder.describe(), "weight": EMBED_WEIGHT} if embedder is not None else None,
        "tuned": {**engine.tuned.spec, "weight": engine.tuned_weight} if engine.tuned is not None else None,
        "languages": engine.meta["languages"],
        "sentiments": list(SENTIMENTS),
        "weights_sha256": digest,
        "validation": metrics,
    }
    (staging / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    info = registry.commit(staging, name)
    if promote:
        info = registry.promote(name)
    log.info("entity model trained", extra={"model": name, "wall_time_s": round(elapsed, 1)})
    say(f"entity model {name} trained in {elapsed:.1f} s" + (" and promoted" if promote else ""))
    return info


def _weights_digest(folder: Path) -> str:
    """sha256 of the linear arrays, or of the arrays' and the pair classifier's hashes together."""
    import hashlib

    digest = datamod.file_sha256(folder / ARRAYS_FILE)
    tuned = folder / TUNED_DIR / TUNED_WEIGHTS
    if tuned.is_file():
        digest = hashlib.sha256(f"{digest}{datamod.file_sha256(tuned)}".encode()).hexdigest()
    return digest


def _english_labeled(frame: pd.DataFrame) -> tuple[list[str], list[str], list[int], np.ndarray]:
    """(texts, entities, label index, row mask) of the English pairs with a three-way sentiment label."""
    labels = [training_label(v) for v in frame["label"]]
    mask = np.array(
        [lang == "en" and label in SENTIMENTS for lang, label in zip(frame["lang"], labels, strict=True)], dtype=bool
    )
    return (
        [str(t) for t in frame["text"][mask]],
        [str(e) for e in frame["entity"][mask]],
        [SENTIMENTS.index(str(label)) for label, keep in zip(labels, mask, strict=True) if keep],
        mask,
    )


def _tune(
    engine: EntityEngine,
    parts: dict[str, pd.DataFrame],
    val_x: Any,
    aux_texts: Sequence[str],
    aux_labels: Sequence[str],
    base: str,
    seed: int,
    say: Callable[[str], None],
) -> dict[str, Any] | None:
    """Fine-tune the pair classifier on the English training pairs, then choose its blend weight with the linear
    head on the English early-stopping pairs (ties go to the larger weight). Sets ``engine.tuned``."""
    from classifier.entity import tuned as tunedmod

    train_t, train_e, train_y, _ = _english_labeled(parts["train"])
    val_t, val_e, val_y, val_mask = _english_labeled(parts["val"])
    if not train_t:
        say("  pair classifier: no English labeled training pairs; not trained")
        return None
    model, report = tunedmod.fine_tune(
        base,
        (train_t, train_e, train_y),
        (list(aux_texts), [SENTIMENTS.index(label) for label in aux_labels]),
        (val_t, val_e, val_y),
        seed=seed,
        progress=say,
    )
    weight = 1.0
    if val_t and val_x is not None:
        linear = engine.proba_matrix(val_x)[0][val_mask]
        tuned = model.predict_proba(val_t, val_e)
        scores = {w: tunedmod.accuracy(w * tuned + (1 - w) * linear, val_y) for w in BLEND_WEIGHTS}
        weight = max(BLEND_WEIGHTS, key=lambda w: (scores[w], w))
        report["blend_accuracy"] = {str(w): round(a, 4) for w, a in scores.items()}
        say(
            "  pair classifier: early-stopping accuracy by blend weight "
            + ", ".join(f"{w}: {a:.3f}" for w, a in scores.items())
            + f" -> {weight}"
        )
    report["weight"] = weight
    engine.tuned, engine.tuned_weight = model, weight
    return report


def _relevance_label(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return "about" if float(value) >= 0.5 else "not"


def _aux_matrix(vecs: dict[str, Any], docs: Sequence[str]) -> Any:
    return _scale_aux([vecs[b].transform(docs) for b in features.AUX_BLOCKS])


def _scale_aux(blocks: Sequence[Any]) -> Any:
    import scipy.sparse as sp

    return sp.hstack(blocks, format="csr", dtype=np.float32) * np.float32(1 / np.sqrt(len(blocks)))


HEAD_NAMES = ("aux", "sentiment", "relevance")


def _save(folder: Path, vecs: dict[str, Any], heads: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> None:
    vocab = {
        name: {"vocabulary": {k: int(v) for k, v in vec.vocabulary_.items()}, "params": features.BLOCKS[name]}
        for name, vec in vecs.items()
    }
    vocab["temperature"] = {h: float(heads[h][2]) for h in HEAD_NAMES}
    (folder / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    arrays = {f"{name}_idf": vec.idf_.astype(np.float32) for name, vec in vecs.items()}
    for h in HEAD_NAMES:
        arrays[f"{h}_coef"], arrays[f"{h}_intercept"] = heads[h][0], heads[h][1]
    np.savez_compressed(folder / ARRAYS_FILE, **arrays)


class EntityEngine:
    """Sentiment toward and relevance of each (document, entity) pair; thread-safe."""

    def __init__(
        self,
        vecs: dict[str, Any],
        heads: dict[str, tuple[np.ndarray, np.ndarray, float]],
        meta: dict[str, Any],
        max_per_doc: int = 5,
        embedder: Any = None,
        tuned: Any = None,
    ) -> None:
        self.vecs = vecs
        self.heads = dict(heads)  # name -> (coef, intercept, temperature)
        self.meta = meta
        self.model_version: str = meta["model_version"]
        self.languages: tuple[str, ...] = tuple(meta.get("languages", []))
        self.max_per_doc = max_per_doc
        self.embedder = embedder  # classifier.entity.embed.PairEmbedder or None (TF-IDF only)
        self.embed_weight = float((meta.get("embedder") or {}).get("weight", EMBED_WEIGHT))
        self.tuned = tuned  # classifier.entity.tuned.TunedPairs or None
        self.tuned_weight = float((meta.get("tuned") or {}).get("weight", 1.0))
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | str, max_per_doc: int = 5) -> EntityEngine:
        from classifier.model import ModelLoadError
        from classifier.quick import _restore_vectorizer

        path = Path(path)
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            if meta.get("kind") != KIND:
                raise ValueError(f"kind {meta.get('kind')!r} is not {KIND!r}")
            vocab = json.loads((path / VOCAB_FILE).read_text(encoding="utf-8"))
            with np.load(path / ARRAYS_FILE, allow_pickle=False) as arrays:
                vecs = {
                    name: _restore_vectorizer(vocab[name]["params"], vocab[name]["vocabulary"], arrays[f"{name}_idf"])
                    for name in features.BLOCKS
                }
                heads = {
                    h: (arrays[f"{h}_coef"], arrays[f"{h}_intercept"], float(vocab["temperature"][h]))
                    for h in HEAD_NAMES
                }
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ModelLoadError(f"{path} is not a loadable entity model: {exc}") from exc
        n_aux = sum(len(vocab[b]["vocabulary"]) for b in features.AUX_BLOCKS)
        n = sum(len(vocab[b]["vocabulary"]) for b in (*features.DOC_BLOCKS, *features.PAIR_BLOCKS))
        n += features.N_DENSE + len(SENTIMENTS)
        embedder = None
        if meta.get("embedder"):
            from classifier.entity.embed import PairEmbedder

            spec = meta["embedder"]
            embedder = PairEmbedder(str(spec["base"]), int(spec["max_length"]))
            if embedder.dim != int(spec["dim"]):
                raise ModelLoadError(f"{path}: embedder {spec['base']!r} has {embedder.dim} dims, not {spec['dim']}")
            n += embedder.dim
        expected = {"aux": (len(SENTIMENTS), n_aux), "sentiment": (len(SENTIMENTS), n), "relevance": (2, n)}
        for h, shape in expected.items():
            if heads[h][0].shape != shape:
                raise ModelLoadError(f"{path}: {h} coefficients {heads[h][0].shape} do not match {shape}")
        tuned = None
        if meta.get("tuned"):
            from classifier.entity.tuned import TunedPairs

            tuned = TunedPairs.load(path / TUNED_DIR, meta["tuned"])
        return cls(vecs, heads, meta, max_per_doc=max_per_doc, embedder=embedder, tuned=tuned)

    def _margins(self, head: str, x: Any) -> np.ndarray:
        coef, intercept, _ = self.heads[head]
        return np.asarray(x @ coef.T) + intercept

    def pair_matrix(
        self,
        texts: Sequence[str],
        marked: Sequence[features.Marked],
        doc_blocks: Sequence[Any] | None = None,
        entities: Sequence[str] = (),
        progress: Callable[[str], None] | None = None,
    ) -> Any:
        """Feature rows of the pairs: the doc blocks and the stacked document-sentiment margins are computed once
        per distinct text (``doc_blocks``: those already computed, one row per distinct text in order); with an
        embedder, the pair embeddings of English pairs (``entities[i]``: the target of pair i) follow."""
        import scipy.sparse as sp

        from classifier.quick import text_language

        uniq = list(dict.fromkeys(texts))
        index = {t: i for i, t in enumerate(uniq)}
        rows = [index[t] for t in texts]
        docs = [features.doc_text(t) for t in uniq]
        if doc_blocks is None:
            doc_blocks = [self.vecs[b].transform(docs) for b in features.DOC_BLOCKS]
        doc_x = sp.hstack(doc_blocks, format="csr", dtype=np.float32)
        # the stacked document-sentiment margins exist for English text only (zeros elsewhere, never computed)
        english = [i for i, t in enumerate(docs) if text_language(t) == "en"]
        aux = np.zeros((len(docs), len(SENTIMENTS)), np.float32)
        if english:
            aux[english] = self._margins("aux", _aux_matrix(self.vecs, [docs[i] for i in english])) * AUX_WEIGHT
        extra = aux[rows].astype(np.float32)
        if self.embedder is not None:
            emb = np.zeros((len(texts), self.embedder.dim), np.float32)
            is_en = set(english)
            en_pairs = [j for j, r in enumerate(rows) if r in is_en]
            if en_pairs:
                emb[en_pairs] = self.embedder.encode(
                    [texts[j] for j in en_pairs], [entities[j] for j in en_pairs], progress
                )
            extra = np.hstack([extra, emb * np.float32(self.embed_weight)])
        return features.stack(self.vecs, doc_x[rows], marked, extra)

    def proba_matrix(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        sentiment = _softmax(self._margins("sentiment", x) / self.heads["sentiment"][2])
        relevance = _softmax(self._margins("relevance", x) / self.heads["relevance"][2])[:, 1]
        return sentiment, relevance

    def blend(self, texts: Sequence[str], entities: Sequence[str], sentiment: np.ndarray) -> np.ndarray:
        """With a pair classifier: English pairs' sentiment = weight x its probabilities + (1 - weight) x the
        linear head's (other languages keep the linear head's)."""
        from classifier.quick import text_language

        if self.tuned is None or not len(texts):
            return sentiment
        english = [j for j, t in enumerate(texts) if text_language(features.doc_text(t)) == "en"]
        if not english:
            return sentiment
        out = np.array(sentiment, dtype=np.float32, copy=True)
        tuned = self.tuned.predict_proba([texts[j] for j in english], [entities[j] for j in english])
        out[english] = self.tuned_weight * tuned + (1 - self.tuned_weight) * out[english]
        return out

    def predict_pairs(
        self, texts: Sequence[str], entities: Sequence[str], others: Sequence[Sequence[str]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sentiment probabilities (n, 3; SENTIMENTS order) and relevance (n,) of each (text, entity) pair;
        ``others[i]`` are the other entities of text i (masked apart from the target)."""
        if not texts:
            return np.zeros((0, len(SENTIMENTS)), np.float32), np.zeros(0, np.float32)
        marked = [features.mark(t, e, o) for t, e, o in zip(texts, entities, others, strict=True)]
        with self._lock:
            sentiment, relevance = self.proba_matrix(self.pair_matrix(texts, marked, entities=entities))
            return self.blend(texts, entities, sentiment), relevance

    def predict(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[Any]]:
        """For each (text, entities in relevance order): at most ``max_per_doc`` EntityPredictions, the most
        relevant first. The first 2 x max_per_doc distinct entities (case-insensitive) are scored."""
        from classifier.entity import EntityPrediction
        from classifier.entity.api import check_items

        docs = check_items(items)
        texts, names, others, owner = [], [], [], []
        for i, (text, entities) in enumerate(docs):
            chosen = entities[: 2 * self.max_per_doc]
            for entity in chosen:
                texts.append(text)
                names.append(entity)
                others.append(chosen)
                owner.append(i)
        sentiment, relevance = self.predict_pairs(texts, names, others)
        out: list[list[Any]] = [[] for _ in docs]
        for j, i in enumerate(owner):
            probs = sentiment[j]
            out[i].append(
                EntityPrediction(
                    entity=names[j],
                    sentiment=SENTIMENTS[int(probs.argmax())],
                    sentiment_score=float(
                        np.clip(probs[SENTIMENTS.index("positive")] - probs[SENTIMENTS.index("negative")], -1, 1)
                    ),
                    relevance=float(np.clip(relevance[j], 0, 1)),
                )
            )
        return [sorted(preds, key=lambda p: -p.relevance)[: self.max_per_doc] for preds in out]

    def close(self) -> None:
        """Nothing to release."""
