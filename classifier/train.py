"""Joint training of the topic and sentiment heads on one encoder, with masked losses.

Examples carry a sentiment label, a topic label or both; each head's loss covers only the examples labeled for
it. Batches are length-bucketed (tweets are short, padding is the main waste on CPU), precision follows the
device (bf16 autocast on CPUs with native bf16, fp16/bf16 on CUDA), and the best validation checkpoint wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from classifier import data as datamod
from classifier.config import TrainingArguments
from classifier.device import autocast_dtype, cpu_threads, resolve_device
from classifier.metrics import classification_report
from classifier.model import WEIGHTS_FILE, MultiTaskClassifier, load_tokenizer
from classifier.registry import META_FILE, METRICS_FILE, TRAIN_KEYS_FILE, ModelInfo, Registry
from classifier.specs import TOPICS, DatasetSpec
from classifier.text import clean_text
from finpulse.contracts import SENTIMENTS
from finpulse.settings import Settings

log = logging.getLogger(__name__)
IGNORE = -100
FORMAT_VERSION = 1


@dataclass
class Encoded:
    """A split, tokenized once: token id arrays (unpadded) and label ids (IGNORE where absent)."""

    frame: pd.DataFrame
    input_ids: list[np.ndarray]
    sentiment: np.ndarray
    topic: np.ndarray
    # Per-row loss weights (analysts' corrections weigh more); None = every row weighs 1.
    weight: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def encode_frame(frame: pd.DataFrame, tokenizer: Any, max_length: int, strip_urls: bool) -> Encoded:
    texts = [clean_text(t, strip_urls) for t in frame["text"]]
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    s_index = {name: i for i, name in enumerate(SENTIMENTS)}
    t_index = {name: i for i, name in enumerate(TOPICS)}
    return Encoded(
        frame=frame,
        input_ids=[np.asarray(x, dtype=np.int64) for x in ids],
        sentiment=np.array([s_index.get(v, IGNORE) if isinstance(v, str) else IGNORE for v in frame["sentiment"]]),
        topic=np.array([t_index.get(v, IGNORE) if isinstance(v, str) else IGNORE for v in frame["topic"]]),
        weight=_row_weights(frame),
    )


def _row_weights(frame: pd.DataFrame) -> np.ndarray | None:
    if "weight" not in frame.columns:
        return None
    weights = frame["weight"].fillna(1.0).to_numpy(dtype=np.float32)
    return None if np.all(weights == 1.0) else weights


def weighted_loss(loss: nn.CrossEntropyLoss, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``loss`` as a weighted mean over the labeled rows (the unweighted loss is the case w = 1)."""
    per_row = nn.functional.cross_entropy(
        logits, y, ignore_index=IGNORE, label_smoothing=loss.label_smoothing, reduction="none"
    )
    w = w * (y != IGNORE)
    return (per_row * w).sum() / w.sum().clamp_min(1e-12)


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, sort by length inside windows of 64 batches, cut batches, shuffle their order."""
    order = rng.permutation(len(lengths))
    window = batch_size * 64
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate(input_ids: Sequence[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in input_ids)
    ids = np.full((len(input_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(input_ids), width), dtype=np.int64)
    for row, x in enumerate(input_ids):
        ids[row, : len(x)] = x
        mask[row, : len(x)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def sorted_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    order = np.argsort(lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        yield order[i : i + batch_size]


@torch.inference_mode()
def predict_encoded(
    model: MultiTaskClassifier,
    enc: Encoded,
    pad_id: int,
    device: torch.device,
    dtype: torch.dtype | None,
    batch_size: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Topic and sentiment probabilities for every row, in the split's order."""
    model.eval()
    n = len(enc.input_ids)
    topic = np.zeros((n, len(model.topics)), dtype=np.float32)
    sentiment = np.zeros((n, len(model.sentiments)), dtype=np.float32)
    for idx in sorted_batches(enc.lengths, batch_size):
        ids, mask = collate([enc.input_ids[i] for i in idx], pad_id)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            t_logits, s_logits = model(ids.to(device), mask.to(device))
        topic[idx] = torch.softmax(t_logits.float(), -1).cpu().numpy()
        sentiment[idx] = torch.softmax(s_logits.float(), -1).cpu().numpy()
    return topic, sentiment


def validation_metrics(enc: Encoded, topic_probs: np.ndarray, sent_probs: np.ndarray) -> dict[str, Any]:
    """Per task and per source; PhraseBank is also reported on its 100%-agreement sentences."""
    out: dict[str, Any] = {}
    frame = enc.frame.reset_index(drop=True)
    has_s, has_t = enc.sentiment != IGNORE, enc.topic != IGNORE
    if has_s.any():
        out["sentiment"] = _brief(classification_report(enc.sentiment[has_s], sent_probs[has_s], SENTIMENTS))
    if has_t.any():
        out["topic"] = _brief(classification_report(enc.topic[has_t], topic_probs[has_t], TOPICS))
    groups: dict[str, np.ndarray] = {}
    for source in sorted(frame["source"].unique()):
        groups[source] = (frame["source"] == source).to_numpy()
    if "phrasebank" in groups:
        groups["phrasebank_agree100"] = groups["phrasebank"] & (frame["group"] == "100").to_numpy()
    for name, rows in groups.items():
        for task, has, labels, probs, names in (
            ("sentiment", has_s, enc.sentiment, sent_probs, SENTIMENTS),
            ("topic", has_t, enc.topic, topic_probs, TOPICS),
        ):
            sel = rows & has
            if sel.any():
                out[f"{name}/{task}"] = _brief(classification_report(labels[sel], probs[sel], names))
    scores = [out[t]["macro_f1"] for t in ("sentiment", "topic") if t in out]
    out["score"] = float(np.mean(scores)) if scores else 0.0
    return out


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in ("n", "accuracy", "macro_f1", "ece", "per_class")}


def _optimizer(model: MultiTaskClassifier, args: TrainingArguments) -> torch.optim.Optimizer:
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr = args.learning_rate if name.startswith("encoder.") else args.head_learning_rate
        wd = 0.0 if name.endswith(no_decay) else args.weight_decay
        groups.setdefault((lr, wd), []).append(param)
    return torch.optim.AdamW([{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()])


def _lr_lambda(total: int, warmup: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


@dataclass
class Splits:
    """The four disjoint parts of the deduplicated data and their fingerprints."""

    train: pd.DataFrame
    early_stop: pd.DataFrame
    promotion: pd.DataFrame
    holdout: pd.DataFrame
    fingerprint: dict[str, Any]


def prepare_splits(
    args: TrainingArguments,
    root: Path | None,
    extra_specs: Sequence[DatasetSpec] = (),
    from_hub: bool = False,
) -> Splits:
    """Load, dedupe, then carve holdout, promotion and early-stopping splits (seeded, stratified), leak-checked.

    The quick model and the transformer call this with the same datasets and seed, so neither trains on the rows
    the promotion decision or the reported holdout figures are computed on.
    """
    names: list[str | DatasetSpec] = [*args.datasets, *extra_specs]
    frame, prints = datamod.load_datasets(names, root, from_hub=from_hub)
    deduped = datamod.dedupe(frame)
    if args.max_examples is not None and len(deduped) > args.max_examples:
        deduped = deduped.sample(n=args.max_examples, random_state=args.seed).reset_index(drop=True)
    rest, holdout = _carve(deduped, args.holdout_fraction, args.seed + 2)
    rest, promotion = _carve(rest, args.promotion_fraction / (1 - args.holdout_fraction), args.seed + 1)
    share = args.val_fraction / (1 - args.holdout_fraction - args.promotion_fraction)
    train_df, val_df = datamod.stratified_split(rest, share, args.seed)
    for held in (val_df, promotion, holdout):
        datamod.check_no_leak(train_df, held)
    fingerprint = {
        "datasets": prints,
        "rows_loaded": len(frame),
        "rows_after_dedupe": len(deduped),
        "train_rows": len(train_df),
        "validation_rows": len(val_df),
        "promotion_rows": len(promotion),
        "holdout_rows": len(holdout),
        "train_sha256": datamod.frame_fingerprint(train_df),
        "validation_sha256": datamod.frame_fingerprint(val_df),
        "promotion_sha256": datamod.frame_fingerprint(promotion),
        "holdout_sha256": datamod.frame_fingerprint(holdout),
    }
    return Splits(train_df, val_df, promotion, holdout, fingerprint)


def _carve(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    if fraction <= 0:
        return frame, frame.iloc[0:0].reset_index(drop=True)
    return datamod.stratified_split(frame, fraction, seed)


def prepare_data(
    args: TrainingArguments,
    root: Path | None,
    extra_specs: Sequence[DatasetSpec] = (),
    from_hub: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train, early-stopping validation and the data fingerprints (see prepare_splits for all four splits)."""
    splits = prepare_splits(args, root, extra_specs, from_hub)
    return splits.train, splits.early_stop, splits.fingerprint


def text_key(text: str) -> int:
    """A 64-bit hash of the normalised text (links, case and spaces ignored, as dedupe does)."""
    from finpulse.contracts import normalise_text

    return int.from_bytes(hashlib.blake2b(normalise_text(text).encode("utf-8"), digest_size=8).digest(), "little")


def row_keys(texts: Sequence[str]) -> np.ndarray:
    """Sorted unique text keys: saved with a model as ``train_keys.npy`` so that a later shadow evaluation can
    drop any row a model was trained on (models trained on other data versions stay comparable)."""
    return np.unique(np.fromiter((text_key(t) for t in texts), dtype=np.uint64, count=len(texts)))


def model_name(args: TrainingArguments, now: datetime) -> str:
    base = Path(args.base_model.rstrip("/")).name.lower().replace("_", "-")
    return f"finpulse-{base}-{now:%Y%m%d-%H%M%S}"


class TrainingInterrupted(RuntimeError):
    """Training stopped on request (SIGTERM) after saving a checkpoint; run again to resume."""


CHECKPOINT_FILE = "checkpoint.pt"


def _save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Atomically: a crash while writing leaves the previous checkpoint in place."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{CHECKPOINT_FILE}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, folder / CHECKPOINT_FILE)


def load_checkpoint(folder: Path | None) -> dict[str, Any] | None:
    if folder is None or not (folder / CHECKPOINT_FILE).is_file():
        return None
    try:
        return torch.load(folder / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    except Exception:  # a checkpoint from another torch version or a torn disk: start over rather than crash-loop
        log.warning("checkpoint in %s unreadable; starting from scratch", folder, exc_info=True)
        return None


def train(
    args: TrainingArguments,
    settings: Settings,
    *,
    name: str | None = None,
    data_root: Path | None = None,
    extra_specs: Sequence[DatasetSpec] = (),
    from_hub: bool = False,
    promote: bool = False,
    progress: bool = True,
    device: str | None = None,
    checkpoint_dir: Path | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    corrections: Sequence[Any] | None = None,
) -> ModelInfo:
    """Train a model from ``args`` and save it to the registry; returns its ModelInfo.

    With ``checkpoint_dir``, the full training state is saved there every ``args.checkpoint_every_steps`` steps
    and a later call with the same arguments resumes from it; the result is the same model an uninterrupted run
    gives. ``on_progress`` gets {step, total, epoch, score, best_score, best_step, loss} after every step;
    ``should_stop`` returning True saves a checkpoint and raises TrainingInterrupted. Analysts' corrections
    join the training rows, weighted, with a held-out slice (classifier/corrections.py; ``corrections`` None reads
    them from ClickHouse when it answers), exactly as for the quick model.
    """
    from classifier import corrections as corrmod

    started = time.monotonic()
    now = datetime.now(UTC)
    name = name or model_name(args, now)
    registry = Registry.from_settings(settings)
    root = data_root if data_root is not None else settings.shared_data_dir
    dev = resolve_device(device or settings.model_device)
    torch.manual_seed(args.seed)
    if dev.type == "cpu":
        torch.set_num_threads(cpu_threads(args.threads))
    dtype = autocast_dtype(dev, args.precision)

    splits, corr = corrmod.with_corrections(
        prepare_splits(args, root, extra_specs, from_hub), settings, corrections, echo=tqdm.write if progress else None
    )
    train_df, val_df, fingerprint = splits.train, splits.early_stop, splits.fingerprint
    tokenizer = load_tokenizer(args.base_model)
    train_enc = encode_frame(train_df, tokenizer, args.max_length, args.strip_urls)
    val_enc = encode_frame(val_df, tokenizer, args.max_length, args.strip_urls)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    model = MultiTaskClassifier.from_base(args.base_model, list(TOPICS), list(SENTIMENTS), args.dropout, args.seed)
    if args.freeze_embeddings:
        # The 30k x 384 token embedding is half of MiniLM's weights: freezing it halves optimizer work on CPU
        # and keeps rare tokens' pretrained geometry.
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    model.to(dev)
    optimizer = _optimizer(model, args)
    steps_per_epoch = math.ceil(len(train_enc.input_ids) / args.batch_size)
    total = math.ceil(steps_per_epoch * args.epochs)
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total, int(total * args.warmup_ratio)))
    scaler = torch.amp.GradScaler("cuda", enabled=dev.type == "cuda" and dtype == torch.float16)
    losses = {
        "sentiment": nn.CrossEntropyLoss(ignore_index=IGNORE, label_smoothing=args.label_smoothing),
        "topic": nn.CrossEntropyLoss(ignore_index=IGNORE, label_smoothing=args.label_smoothing),
    }
    eval_every = args.eval_every_steps or steps_per_epoch
    checkpoint_every = args.checkpoint_every_steps or eval_every

    rng = np.random.default_rng(args.seed)
    best: dict[str, Any] = {"score": -1.0, "step": 0, "metrics": {}, "state": None}
    history: list[dict[str, Any]] = []
    stale, step, epoch, skip, stop_reason = 0, 0, 0, 0, "max_steps"
    # Frozen weights (the token embedding: 96M of multilingual-e5-small's 118M parameters) never change: they are
    # re-created from the base on resume, which keeps a checkpoint to the trained part.
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}

    def trainable(state: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
        return None if state is None else {k: v for k, v in state.items() if k not in frozen}

    resumed = load_checkpoint(checkpoint_dir)
    if resumed is not None and resumed.get("total") == total and resumed.get("name") == name:
        loaded = model.load_state_dict(resumed["model"], strict=False)  # frozen weights come from the base
        if set(loaded.missing_keys) - frozen or loaded.unexpected_keys:
            raise RuntimeError(f"checkpoint in {checkpoint_dir} does not match the model: {loaded}")
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        scaler.load_state_dict(resumed["scaler"])
        torch.set_rng_state(resumed["torch_rng"])
        rng.bit_generator.state = json.loads(resumed["epoch_rng"])
        step, epoch, skip, stale = resumed["step"], resumed["epoch"], resumed["epoch_pos"], resumed["stale"]
        best_state = resumed["best_state"]
        if best_state is not None:
            full = model.state_dict()
            best_state = {k: best_state.get(k, v.detach().to("cpu", copy=True)) for k, v in full.items()}
        best = {**json.loads(resumed["best"]), "state": best_state}
        history = json.loads(resumed["history"])
        log.info("resuming", extra={"model": name, "step": step, "checkpoint": str(checkpoint_dir)})
    elif resumed is not None:
        log.warning("checkpoint in %s is for another run; starting from scratch", checkpoint_dir)
    log.info(
        "training",
        extra={"model": name, "device": str(dev), "dtype": str(dtype), "train": len(train_df), "steps": total},
    )
    lengths = train_enc.lengths
    bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not progress, dynamic_ncols=True)
    last: dict[str, Any] = {"score": history[-1]["score"] if history else None, "loss": None}

    def report() -> None:
        if on_progress is not None:
            on_progress(
                {
                    "step": step,
                    "total": total,
                    "epoch": epoch,
                    "score": last["score"],
                    "best_score": best["score"] if best["score"] >= 0 else None,
                    "best_step": best["step"],
                    "loss": last["loss"],
                }
            )

    def evaluate_now() -> bool:
        nonlocal stale
        t_probs, s_probs = predict_encoded(model, val_enc, pad_id, dev, dtype)
        metrics = validation_metrics(val_enc, t_probs, s_probs)
        # Elapsed time is recorded for the model card only; no decision reads it.
        history.append({"step": step, "score": metrics["score"], "elapsed_s": round(time.monotonic() - started, 1)})
        last["score"] = metrics["score"]
        model.train()
        if metrics["score"] > best["score"]:
            best.update(score=metrics["score"], step=step, metrics=metrics)
            best["state"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            stale = 0
        else:
            stale += 1
        bar.write(f"step {step}: validation score {metrics['score']:.4f} (best {best['score']:.4f} @ {best['step']})")
        return stale >= args.patience

    def checkpoint(epoch_rng: dict[str, Any], epoch_pos: int) -> None:
        if checkpoint_dir is None:
            return
        _save_checkpoint(
            checkpoint_dir,
            {
                "name": name,
                "total": total,
                "step": step,
                "epoch": epoch,
                "epoch_pos": epoch_pos,
                "stale": stale,
                "model": trainable(model.state_dict()),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "epoch_rng": json.dumps(epoch_rng),
                "best": json.dumps({k: v for k, v in best.items() if k != "state"}),
                "best_state": trainable(best["state"]),
                "history": json.dumps(history),
            },
        )

    model.train()
    done = step >= total
    while not done:
        epoch_rng = rng.bit_generator.state  # the epoch's batch order is re-created from this on resume
        batches = bucketed_batches(lengths, args.batch_size, rng)
        for pos, batch in enumerate(batches):
            if pos < skip:
                continue
            ids, mask = collate([train_enc.input_ids[i] for i in batch], pad_id)
            ids, mask = ids.to(dev), mask.to(dev)
            y_s = torch.from_numpy(train_enc.sentiment[batch]).to(dev)
            y_t = torch.from_numpy(train_enc.topic[batch]).to(dev)
            w = None if train_enc.weight is None else torch.from_numpy(train_enc.weight[batch]).to(dev)
            with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                t_logits, s_logits = model(ids, mask)
            loss = torch.zeros((), device=dev)
            # A head's loss counts only where its label exists; an all-unlabeled batch would give NaN.
            for head, logits, y, factor in (
                ("sentiment", s_logits, y_s, args.sentiment_loss_weight),
                ("topic", t_logits, y_t, args.topic_loss_weight),
            ):
                if (y != IGNORE).any():
                    fn = losses[head]
                    term = fn(logits.float(), y) if w is None else weighted_loss(fn, logits.float(), y, w)
                    loss = loss + factor * term
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            last["loss"] = round(float(loss.item()), 4)
            bar.update(1)
            bar.set_postfix(loss=f"{last['loss']:.3f}")
            if step % eval_every == 0 and step < total and evaluate_now():
                stop_reason, done = "early_stopping", True
            if step >= total:
                done = True
            if not done and step % checkpoint_every == 0:
                checkpoint(epoch_rng, pos + 1)
            report()
            if done:
                break
            if should_stop is not None and should_stop():
                checkpoint(epoch_rng, pos + 1)
                bar.close()
                raise TrainingInterrupted(f"stopped at step {step} of {total}; checkpoint in {checkpoint_dir}")
        else:
            epoch += 1
            skip = 0
    bar.close()
    if stop_reason != "early_stopping" and (not history or history[-1]["step"] != step):
        evaluate_now()  # the final weights are a candidate too
        report()
    model.load_state_dict(best["state"])
    slice_scores: dict[str, Any] = {"n": 0, "score": None}
    if len(corr.slice):
        slice_enc = encode_frame(corr.slice, tokenizer, args.max_length, args.strip_urls)
        t_probs, s_probs = predict_encoded(model, slice_enc, pad_id, dev, dtype)
        slice_scores = corrmod.slice_metrics(corr.slice, t_probs, s_probs, model.topics, model.sentiments)
    best["metrics"]["corrections"] = slice_scores
    elapsed = time.monotonic() - started

    staging = registry.staging_dir(name)
    model.save(staging)
    tokenizer.save_pretrained(staging)
    args.save(staging / "training_args.json")
    np.save(staging / TRAIN_KEYS_FILE, row_keys(list(train_df["text"])))
    corrmod.save_slice(staging, corr.slice)
    fingerprint["training"] = {
        "steps": step,
        "best_step": best["step"],
        "stop_reason": stop_reason,
        "resumed_from_step": resumed["step"] if resumed is not None and resumed.get("name") == name else None,
        "wall_time_s": round(elapsed, 1),
        "device": str(dev),
        "dtype": str(dtype),
        "threads": torch.get_num_threads(),
        "history": history,
        "platform": platform.platform(),
        "torch": torch.__version__,
    }
    (staging / "data.json").write_text(json.dumps(fingerprint, indent=2) + "\n", encoding="utf-8")
    (staging / METRICS_FILE).write_text(json.dumps(best["metrics"], indent=2) + "\n", encoding="utf-8")
    weights_hash = datamod.file_sha256(staging / WEIGHTS_FILE)
    from classifier.quick import frame_languages

    trained_langs = sorted(set(frame_languages(train_df)))
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "transformer",
        "name": name,
        "model_version": f"{name}@{weights_hash[:12]}",
        "created_at": now.isoformat(timespec="seconds"),
        "base_model": args.base_model,
        # Only languages the model was trained on get labels (the recipe lists zh; an English-only run must not).
        "languages": [lang for lang in args.languages if lang in trained_langs] or trained_langs,
        "max_length": args.max_length,
        "strip_urls": args.strip_urls,
        "topics": list(TOPICS),
        "sentiments": list(SENTIMENTS),
        "weights_sha256": weights_hash,
        "corrections": {**corr.summary, "slice": slice_scores},
    }
    (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    card = model_card(meta, args, fingerprint, best["metrics"]) + corrmod.card_section(meta["corrections"])
    (staging / "README.md").write_text(card, encoding="utf-8")
    info = registry.commit(staging, name)
    if promote:
        info = registry.promote(name)
    log.info("trained", extra={"model": name, "wall_time_s": round(elapsed, 1), "score": round(best["score"], 4)})
    return info


def model_card(meta: dict[str, Any], args: TrainingArguments, prints: dict[str, Any], metrics: dict[str, Any]) -> str:
    rows = [
        f"| {key} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |"
        for key, m in metrics.items()
        if isinstance(m, dict) and "accuracy" in m
    ]
    sets = ", ".join(f"{k} ({v.get('rows')} rows)" for k, v in prints["datasets"].items())
    return "\n".join(
        [
            f"# {meta['name']}",
            "",
            f"FinPulse topic + sentiment classifier: one `{args.base_model}` encoder (mean pooling), a 20-way topic "
            "head (Twitter Financial News topics) and a 3-way sentiment head (negative / neutral / positive), "
            "trained jointly with masked losses.",
            "",
            f"- model_version: `{meta['model_version']}`",
            f"- languages: {', '.join(meta['languages'])} (other languages are stored unlabeled)",
            f"- training data: {sets}; {prints['train_rows']} train / {prints['validation_rows']} validation rows "
            "after near-duplicate removal (validation carved with a fixed seed, stratified)",
            f"- training: {prints['training']['steps']} steps, best at {prints['training']['best_step']}, "
            f"{prints['training']['wall_time_s']} s on {prints['training']['device']}",
            f"- input: links stripped, whitespace collapsed, truncated to {meta['max_length']} tokens",
            "",
            "## Validation metrics (own split, not a held-out test set)",
            "",
            "| slice | n | accuracy | macro-F1 |",
            "|---|---|---|---|",
            *rows,
            "",
            "Limits: English financial news headlines and tweets; PhraseBank is licensed CC BY-NC-SA 3.0 "
            "(non-commercial), so a model trained on it inherits that restriction.",
            "",
        ]
    )
