"""Entity-level sentiment: conversion of FiQA and FinNSP, the quick entity model through the real training code
and CLI, `evaluate --task entity`, and the serving API (classifier.entity)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from classifier.data import DataError
from classifier.entity import EntityInputError, EntityPrediction, convert, load_entity_engine
from classifier.entity.features import mark
from finpulse.cli import app
from finpulse.settings import load_settings

TRAIN_NAMES = ["Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Vandelay", "Wonka"]
GOOD = ["beats estimates", "raises guidance", "posts record profit", "wins a big contract"]
BAD = ["warns on revenue", "cuts guidance", "posts a surprise loss", "loses a big contract"]
LINKS = ["while rival", "as peer", "; meanwhile", "and competitor"]
ZH_NAMES = ["小资钱包", "联璧金融", "唐小僧", "云钱袋", "众银理财", "花木金融", "得宝理财", "口贷网"]


def contrast_rows(n: int, seed: int = 3) -> list[dict]:
    """FiQA-style rows where only the entity decides the label: 'A good while rival B bad' -> A positive,
    B negative (and the reverse)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.sample(TRAIN_NAMES, 2)
        good, bad, link = rng.choice(GOOD), rng.choice(BAD), rng.choice(LINKS)
        if i % 2:
            text = f"{a} {good} {link} {b} {bad} #{i}"
            labels = {a: 0.6, b: -0.6}
        else:
            text = f"{a} {bad} {link} {b} {good} #{i}"
            labels = {a: -0.6, b: 0.6}
        rows += [
            {"text": text, "score": s, "target": e, "aspects": "[]", "kind": "headline"} for e, s in labels.items()
        ]
    return rows


def finnsp_frame(n: int, seed: int = 5) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.sample(ZH_NAMES, 2)
        if i % 2:
            text = f"{a}涉嫌非法集资被立案调查，{b}发布公告称业务正常 {i}"
            rows.append(
                {"id": f"n{i}", "title": None, "text": text, "entities": f"{a};{b}", "negative": 1, "key_entities": a}
            )
        else:
            text = f"{a}与{b}签署战略合作协议，成交额稳步增长 {i}"
            rows.append(
                {
                    "id": f"n{i}",
                    "title": None,
                    "text": text,
                    "entities": f"{a};{b}",
                    "negative": 0,
                    "key_entities": None,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def entity_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("entity-data")
    (root / "en").mkdir()
    (root / "zh").mkdir()
    pd.DataFrame(contrast_rows(240)).to_csv(root / convert.FIQA_FILE, index=False)
    finnsp_frame(160).to_csv(root / convert.FINNSP_TRAIN_FILE, index=False)
    finnsp_frame(40, seed=11).to_csv(root / convert.FINNSP_EVAL_FILE, index=False)
    return root


@pytest.fixture(scope="module")
def trained_entity(entity_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    data_dir = tmp_path_factory.mktemp("entity-home")
    env = {
        "FINPULSE_DATA_DIR": str(data_dir),
        "FINPULSE_SHARED_DATA_DIR": str(entity_data),
        "FINPULSE_LOG_LEVEL": "WARNING",
    }
    result = CliRunner().invoke(app, ["train", "--task", "entity", "--quick", "--name", "ent", "--promote"], env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    settings = load_settings(data_dir=data_dir, shared_data_dir=entity_data)
    return {"env": env, "settings": settings, "model": data_dir / "models" / "entity" / "ent", "output": result.output}


# --- conversion ------------------------------------------------------------------------------------------------
def test_fiqa_conversion_thresholds_and_relevance() -> None:
    frame = pd.DataFrame(
        [
            {"text": "Acme soars", "score": 0.5, "target": "Acme"},
            {"text": "Acme and Globex merge", "score": -0.1, "target": "Acme"},
            {"text": "Acme and Globex merge", "score": 0.1001, "target": "Globex"},
            {"text": "$TSLA tanks", "score": -0.101, "target": "TSLA"},
            {"text": "Flat day", "score": 0.0, "target": "Initech"},
        ]
    )
    rows = convert.fiqa_rows(frame)
    assert rows["label"].tolist() == ["positive", "neutral", "positive", "negative", "neutral"]
    assert set(rows["relevance"]) == {1}
    assert rows[rows["text"] == "Acme and Globex merge"]["entities"].tolist() == ["Acme;Globex", "Acme;Globex"]
    absent = convert.absent_pairs(rows, seed=1)
    assert len(absent) > 0 and set(absent["relevance"]) == {0} and absent["label"].isna().all()
    for text, entity in zip(absent["text"], absent["entity"], strict=True):
        assert entity.casefold() not in text.casefold()


def test_finnsp_conversion_subject_and_other_entities() -> None:
    frame = pd.DataFrame(
        [
            {
                "title": "众车在线跑路",
                "text": "众车在线跑路，恒丰银行为存管行",
                "entities": "众车;众车在线;恒丰银行",
                "negative": 1,
                "key_entities": "众车在线",
            },
            {
                "title": None,
                "text": "万盈金融发布数据报告",
                "entities": "万盈金融",
                "negative": 0,
                "key_entities": None,
            },
        ]
    )
    rows = convert.finnsp_rows(frame).set_index("entity")
    assert rows.loc["众车在线", "label"] == "negative" and rows.loc["众车在线", "relevance"] == 1
    assert rows.loc["恒丰银行", "label"] == convert.NOT_NEGATIVE and rows.loc["恒丰银行", "relevance"] == 0
    assert rows.loc["众车", "label"] == convert.NOT_NEGATIVE  # only named inside the subject's longer name
    assert rows.loc["万盈金融", "label"] == convert.NOT_NEGATIVE and pd.isna(rows.loc["万盈金融", "relevance"])
    # the shorter name inside the longer listed one is not a mention of its own
    assert mark("众车在线跑路", "众车", ["众车在线"]).dense[:2] == (0.0, 1.0)
    assert mark("众车在线跑路", "众车在线", ["众车"]).dense[0] == 1.0


def test_splits_are_by_text_and_seeded(entity_data: Path) -> None:
    rows = convert.builtin_rows(entity_data, seed=42)
    assert (rows.groupby("text")["split"].nunique() == 1).all()
    assert rows.equals(convert.builtin_rows(entity_data, seed=42))
    assert set(rows["split"]) == set(convert.SPLITS)
    eval_texts = set(convert.finnsp_rows(pd.read_csv(entity_data / convert.FINNSP_EVAL_FILE))["text"])
    assert not eval_texts & set(rows["text"])  # eval rows never train


# --- the model -------------------------------------------------------------------------------------------------
def test_entity_decides_the_sentiment(trained_entity: dict) -> None:
    engine = load_entity_engine(trained_entity["settings"])
    assert engine is not None
    out = engine.predict(
        [
            ("Acme beats estimates while rival Globex warns on revenue", ["Acme", "Globex"]),
            ("Acme warns on revenue while rival Globex beats estimates", ["Acme", "Globex"]),
            ("小微金融涉嫌非法集资被立案调查，蓝海银行发布公告称业务正常", ["小微金融", "蓝海银行"]),
        ]
    )
    first = {p.entity: p for p in out[0]}
    second = {p.entity: p for p in out[1]}
    assert first["Acme"].sentiment == "positive" and first["Globex"].sentiment == "negative"
    assert second["Acme"].sentiment == "negative" and second["Globex"].sentiment == "positive"
    assert first["Acme"].sentiment_score > 0 > first["Globex"].sentiment_score
    zh = {p.entity: p for p in out[2]}
    assert zh["小微金融"].sentiment == "negative" and zh["蓝海银行"].sentiment != "negative"
    for p in out[0] + out[2]:
        assert isinstance(p, EntityPrediction) and -1 <= p.sentiment_score <= 1 and 0 <= p.relevance <= 1


def test_relevance_and_max_entities_per_doc(trained_entity: dict) -> None:
    from classifier.entity.linear import EntityEngine

    engine = EntityEngine.load(trained_entity["model"], max_per_doc=2)
    [preds] = engine.predict(
        [("Acme beats estimates while rival Globex warns", ["Acme", "acme", " ", "Globex", "Zenith", "Orbit"])]
    )
    assert len(preds) == 2 and [p.relevance for p in preds] == sorted((p.relevance for p in preds), reverse=True)
    assert {p.entity for p in preds} == {"Acme", "Globex"}  # named ones before ones the text never mentions
    [all_of_them] = EntityEngine.load(trained_entity["model"], max_per_doc=5).predict(
        [("Acme beats estimates while rival Globex warns", ["Acme", "Zenith"])]
    )
    rel = {p.entity: p.relevance for p in all_of_them}
    assert rel["Acme"] > 0.5 > rel["Zenith"]
    assert engine.predict([]) == [] and engine.predict([("no entities here", [])]) == [[]]
    with pytest.raises(EntityInputError, match=r"items\[1\]"):
        engine.predict([("ok", ["Acme"]), ("bad", "Acme")])
    with pytest.raises(EntityInputError, match="text is int"):
        engine.predict([(3, ["Acme"])])


def test_no_entity_model_means_none(tmp_path: Path) -> None:
    assert load_entity_engine(load_settings(data_dir=tmp_path / "empty")) is None


def test_training_writes_registry_entry_and_holdout_files(trained_entity: dict) -> None:
    model = trained_entity["model"]
    meta = json.loads((model / "meta.json").read_text())
    assert meta["kind"] == "entity-linear" and meta["languages"] == ["en", "zh"]
    assert (model / "splits" / "fiqa_holdout.csv").is_file() and (model / "splits" / "finnsp_holdout.csv").is_file()
    assert (model.parent / "PROMOTED").read_text().strip() == "ent"
    assert not (model.parent.parent / "PROMOTED").exists()  # the document registry is untouched
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["holdout"]["fiqa"]["accuracy"] > metrics["holdout"]["fiqa"]["baseline"]["accuracy"]


# --- evaluate --------------------------------------------------------------------------------------------------
def _evaluate(env: dict, path: Path, *extra: str):
    return CliRunner().invoke(app, ["evaluate", "--task", "entity", "--data", str(path), *extra], env=env)


def test_evaluate_entity_on_both_converted_formats(trained_entity: dict, entity_data: Path, tmp_path: Path) -> None:
    env = trained_entity["env"]
    holdout = trained_entity["model"] / "splits"
    fiqa = json.loads(_evaluate(env, holdout / "fiqa_holdout.csv", "--json").stdout)
    assert fiqa["mode"] == "three_class" and fiqa["n"] > 0 and fiqa["accuracy"] > fiqa["baseline"]["accuracy"]
    assert set(fiqa["per_class"]) == {"negative", "neutral", "positive"}
    nsp = json.loads(_evaluate(env, holdout / "finnsp_holdout.csv", "--json").stdout)
    assert nsp["mode"] == "negative_vs_not" and nsp["negative_f1"] > nsp["baseline"]["negative_f1"]
    # raw FinNSP eval file, converted on read; and (text, entity, label) JSONL
    raw = json.loads(_evaluate(env, entity_data / convert.FINNSP_EVAL_FILE, "--json").stdout)
    assert raw["n"] == 80 and raw["negative_f1"] > 0.5
    jsonl = tmp_path / "rows.jsonl"
    rows = [
        {"text": "Hooli posts record profit while rival Wonka cuts guidance", "entity": "Hooli", "label": "bullish"},
        {"text": "Hooli posts record profit while rival Wonka cuts guidance", "entity": "Wonka", "label": "negative"},
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    printed = _evaluate(env, jsonl)
    assert printed.exit_code == 0, printed.output
    assert "accuracy 1.0000" in printed.output and "majority-class baseline" in printed.output


def test_evaluate_entity_names_unknown_labels(trained_entity: dict, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame(
        [{"text": "Acme up", "entity": "Acme", "label": "bullishh"}, {"text": "Acme", "entity": "Acme", "label": "meh"}]
    ).to_csv(bad, index=False)
    result = _evaluate(trained_entity["env"], bad)
    assert result.exit_code == 2
    assert "'bullishh'" in result.output and "'meh'" in result.output and "not_negative" in result.output
    with pytest.raises(DataError, match="no column"):
        convert.read_entity_rows(_write(tmp_path / "cols.csv", [{"text": "x", "label": "negative"}]))


def test_evaluate_entity_without_a_model_names_the_command(entity_data: Path, tmp_path: Path) -> None:
    rows = _write(tmp_path / "rows.csv", [{"text": "Acme up", "entity": "Acme", "label": "positive"}])
    env = {"FINPULSE_DATA_DIR": str(tmp_path / "empty"), "FINPULSE_SHARED_DATA_DIR": str(entity_data)}
    result = _evaluate(env, rows)
    assert result.exit_code == 2
    assert "no promoted model" in result.output and "finpulse train --task entity --promote" in result.output


def _write(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# --- first start -----------------------------------------------------------------------------------------------
def test_first_start_trains_entity_model_once(entity_data: Path, tmp_path: Path) -> None:
    from classifier.entity.bootstrap import ensure_entity_model
    from classifier.entity.linear import entity_registry

    settings = load_settings(data_dir=tmp_path / "fresh", shared_data_dir=entity_data)
    messages: list[str] = []
    info = ensure_entity_model(settings, echo=messages.append)
    assert info is not None and entity_registry(settings).promoted().name == info.name  # type: ignore[union-attr]
    assert "trained and promoted" in messages[-1]
    assert ensure_entity_model(settings, echo=messages.append).name == info.name  # type: ignore[union-attr]
    assert len(messages) == 1  # the second call found it: nothing trained

    bare = load_settings(data_dir=tmp_path / "bare", shared_data_dir=tmp_path / "no-data")
    assert ensure_entity_model(bare, echo=messages.append) is None
    assert "no entity data" in messages[-1] and "finpulse train --task entity" in messages[-1]


def test_broken_entity_model_is_a_load_error(trained_entity: dict, tmp_path: Path) -> None:
    import shutil

    from classifier.entity.linear import EntityEngine
    from classifier.model import ModelLoadError

    broken = tmp_path / "broken"
    shutil.copytree(trained_entity["model"], broken)
    (broken / "entity.npz").write_bytes(b"not an archive")
    with pytest.raises(ModelLoadError, match="not a loadable entity model"):
        EntityEngine.load(broken)


# --- pair embeddings (`finpulse train --task entity` without --quick) --------------------------------------------
def test_pair_embedding_model_trains_through_the_cli_and_serves(entity_data: Path, tmp_path: Path) -> None:
    import shutil

    from classifier.entity.linear import EntityEngine
    from classifier.model import ModelLoadError
    from tests.models import micro_encoder

    encoder = micro_encoder(tmp_path / "micro")
    env = {
        "FINPULSE_DATA_DIR": str(tmp_path / "home"),
        "FINPULSE_SHARED_DATA_DIR": str(entity_data),
        "FINPULSE_ENTITY_EMBED_BASE": str(encoder),
        "FINPULSE_ENTITY_TUNE_BASE": "",
        "FINPULSE_LOG_LEVEL": "WARNING",
    }
    result = CliRunner().invoke(app, ["train", "--task", "entity", "--name", "emb", "--promote"], env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"{encoder} pair embeddings" in result.output
    model = tmp_path / "home" / "models" / "entity" / "emb"
    meta = json.loads((model / "meta.json").read_text())
    assert meta["embedder"]["base"] == str(encoder) and meta["embedder"]["dim"] == 32
    engine = load_entity_engine(load_settings(data_dir=tmp_path / "home"))
    assert engine is not None and engine.embedder is not None
    n_tfidf = engine.heads["sentiment"][0].shape[1] - 32  # the heads read the 32 embedding columns too
    assert n_tfidf > 0 and abs(engine.heads["sentiment"][0][:, n_tfidf:]).sum() > 0
    [preds] = engine.predict([("Acme beats estimates while rival Globex warns on revenue", ["Acme", "Globex"])])
    by = {p.entity: p for p in preds}
    assert by["Acme"].sentiment == "positive" and by["Globex"].sentiment == "negative"
    # a different encoder (other width) than the one the heads were trained on is refused, not mis-served
    other = tmp_path / "other"
    shutil.copytree(model, other)
    meta["embedder"]["dim"] = 64
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="32 dims, not 64"):
        EntityEngine.load(other)


# --- the fine-tuned pair classifier (`finpulse train --task entity` without --quick, the default) ---------------
def test_pair_classifier_fine_tunes_through_the_cli_blends_and_refuses_another_base(
    entity_data: Path, tmp_path: Path
) -> None:
    import shutil

    import numpy as np

    from classifier.entity.linear import BLEND_WEIGHTS, EntityEngine
    from classifier.model import ModelLoadError
    from tests.models import micro_encoder

    encoder = micro_encoder(tmp_path / "micro")
    env = {
        "FINPULSE_DATA_DIR": str(tmp_path / "home"),
        "FINPULSE_SHARED_DATA_DIR": str(entity_data),
        "FINPULSE_ENTITY_TUNE_BASE": str(encoder),
        "FINPULSE_LOG_LEVEL": "WARNING",
    }
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--task", "entity", "--name", "tuned", "--promote"], env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"pair classifier: {encoder} (fine-tuned)" in result.output
    assert "early-stopping accuracy by blend weight" in result.output  # progress and the choice are shown
    model = tmp_path / "home" / "models" / "entity" / "tuned"
    meta = json.loads((model / "meta.json").read_text())
    spec = meta["tuned"]
    assert spec["base"] == str(encoder) and spec["weight"] in BLEND_WEIGHTS and len(spec["base_fingerprint"]) == 64
    assert (model / "tuned" / "pair_classifier.safetensors").is_file() and meta["embedder"] is None
    report = json.loads((model / "data.json").read_text())["pair_classifier"]
    assert report["history"] and 0 < report["best_step"] <= report["steps"] <= report["planned_steps"]

    engine = load_entity_engine(load_settings(data_dir=tmp_path / "home"))
    assert isinstance(engine, EntityEngine) and engine.tuned is not None and engine.tuned_weight == spec["weight"]
    texts = ["Acme beats estimates while rival Globex warns on revenue"] * 2 + ["小资钱包涉嫌非法集资被立案调查"]
    names = ["Acme", "Globex", "小资钱包"]
    blended, _ = engine.predict_pairs(texts, names, [names[:2], names[:2], names[2:]])
    marked = [mark(t, e, o) for t, e, o in zip(texts, names, [names[:2], names[:2], names[2:]], strict=True)]
    linear, _ = engine.proba_matrix(engine.pair_matrix(texts, marked, entities=names))
    tuned = engine.tuned.predict_proba(texts[:2], names[:2])
    w = engine.tuned_weight
    # English pairs: the weighted mix of the two models; Chinese pairs keep the linear head's sentiment
    assert np.allclose(blended[:2], w * tuned + (1 - w) * linear[:2], atol=1e-5)
    assert np.allclose(blended[2], linear[2], atol=1e-6) and np.allclose(blended.sum(1), 1, atol=1e-5)

    # the saved layers were tuned on this base's frozen embeddings: another base is refused, not mis-served
    other = tmp_path / "other"
    shutil.copytree(model, other)
    spec["base"] = str(micro_encoder(tmp_path / "micro-2"))  # same shape, other random embeddings
    meta["tuned"] = spec
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="embedding fingerprint differs"):
        EntityEngine.load(other)
    # and weights that do not match are a load error too
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    (broken / "tuned" / "pair_classifier.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="not a loadable pair classifier"):
        EntityEngine.load(broken)


def test_pair_classifier_training_is_deterministic(entity_data: Path, tmp_path: Path) -> None:
    """Same data, recipe and seed: the same weights (no decision depends on wall-clock time)."""
    from classifier.entity.linear import train_entity
    from tests.models import micro_encoder

    encoder = micro_encoder(tmp_path / "micro")
    settings = load_settings(data_dir=tmp_path / "home", shared_data_dir=entity_data)
    first = train_entity(settings, data_root=entity_data, name="a", tune_base=str(encoder))
    second = train_entity(settings, data_root=entity_data, name="b", tune_base=str(encoder))
    meta = [json.loads((info.path / "meta.json").read_text()) for info in (first, second)]
    assert meta[0]["weights_sha256"] == meta[1]["weights_sha256"] and meta[0]["tuned"] is not None


def test_a_pair_classifier_base_that_does_not_load_is_a_message_not_a_traceback(
    entity_data: Path, tmp_path: Path
) -> None:
    env = {
        "FINPULSE_DATA_DIR": str(tmp_path / "home"),
        "FINPULSE_SHARED_DATA_DIR": str(entity_data),
        "FINPULSE_ENTITY_TUNE_BASE": str(tmp_path / "no-such-encoder"),
        "FINPULSE_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
    }
    result = CliRunner().invoke(app, ["train", "--task", "entity", "--name", "bad"], env=env)
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert "cannot load the entity pair-classifier base" in result.output and "no-such-encoder" in result.output
    assert not (tmp_path / "home" / "models" / "entity" / "bad").exists()  # nothing half-saved
