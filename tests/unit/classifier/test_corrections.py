"""Analysts' corrections in training: deterministic held-out slice, no leak into validation, weights, promotion
that needs a gain on the corrections slice, the retrain trigger after N corrections, the per-model report."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from classifier import corrections as corrmod
from classifier.quick import quick_recipe, train_quick
from classifier.registry import Registry
from classifier.shadow import shadow_promote
from classifier.train import prepare_splits, text_key
from finpulse.contracts import normalise_text
from finpulse.settings import load_settings
from warehouse.queries.corrections import Correction

SETS = ["tfns_sentiment", "tfns_topic", "phrasebank"]
WORDS = ["zorblax", "quuxcorp", "flibber", "wumpus", "grault", "plugh", "xyzzy", "frobnic"]


def _corr(
    id: str,
    document_id: str,
    field: str,
    label: str,
    previous_label: str,
    model_version: str,
    analyst: str,
    corrected_at: datetime,
    text: str,
    lang: str = "en",
    entity: str = "",
) -> Correction:
    return Correction(
        id=id,
        document_id=document_id,
        field=field,
        entity=entity,
        label=label,
        previous_label=previous_label,
        model_version=model_version,
        analyst=analyst,
        corrected_at=corrected_at,
        text=text,
        lang=lang,
    )


@dataclass
class FakeStore:
    """The two calls the training side makes (latest_corrections / count_corrections), over a list."""

    rows: list[Correction] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def latest(self, *, since: datetime | None = None) -> list[Any]:
        self.calls.append("latest")
        return [c for c in self.rows if since is None or c.corrected_at > since]

    def count(self, *, since: datetime | None = None) -> int:
        self.calls.append("count")
        return len(self.latest(since=since))


def _pattern_corrections(n: int, *, seed: int = 3, model_version: str = "m@1", start: int = 0) -> list[Correction]:
    """Documents in a made-up vocabulary that analysts label negative + 'M&A | Investments' (a topic the labeled
    sets never show): a model that learned from the corrections agrees with the held-out ones, one that did not
    cannot."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(start, start + n):
        text = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {rng.choice(WORDS)} deal {i} {rng.choice(WORDS)}"
        for fld, label, previous in (("sentiment", "negative", "positive"), ("topic", "M&A | Investments", "Markets")):
            out.append(
                _corr(
                    id=f"c{i}-{fld}",
                    document_id=f"doc-{i}",
                    field=fld,
                    label=label,
                    previous_label=previous,
                    model_version=model_version,
                    analyst="ana",
                    corrected_at=now + timedelta(milliseconds=i),
                    text=text,
                )
            )
    return out


def _settings(tmp_path: Path, data_root: Path, **changes: Any) -> Any:
    # corrections_training off: nothing here may read a ClickHouse some other process runs on the default port
    return load_settings(data_dir=tmp_path / "dd", shared_data_dir=data_root, corrections_training=False, **changes)


def test_held_out_side_is_fixed_by_the_document_id() -> None:
    ids = [f"doc-{i}" for i in range(4000)]
    held = [corrmod.is_held_out(d, 0.2) for d in ids]
    assert held == [corrmod.is_held_out(d, 0.2) for d in ids]  # the same side every run
    assert 0.17 < sum(held) / len(ids) < 0.23
    assert not any(corrmod.is_held_out(d, 0.0) for d in ids)
    # a larger share only moves documents into the slice, never out of it
    assert all(corrmod.is_held_out(d, 0.5) for d, h in zip(ids, held, strict=True) if h)


def test_corrections_flow_into_training_without_leaking_into_validation(data_root: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path, data_root)
    splits = prepare_splits(quick_recipe(SETS), data_root)
    corrections = _pattern_corrections(60)
    now = datetime.now(UTC)
    # three standard validation/test documents an analyst also corrected (copies of their text with new ids)
    standard = [splits.early_stop["text"].iloc[0], splits.promotion["text"].iloc[0], splits.holdout["text"].iloc[0]]
    for i, text in enumerate(standard):
        corrections.append(_corr(f"s{i}", f"std-{i}", "sentiment", "neutral", "", "m@1", "ana", now, text))
    # a document corrected twice: the latest label wins; an entity correction and an unknown label are skipped
    labeled = splits.train["text"].iloc[5]
    corrections += [
        _corr("t1", "twice", "sentiment", "positive", "", "m@1", "ana", now, labeled),
        _corr("t2", "twice", "sentiment", "bearish", "", "m@1", "bob", now + timedelta(seconds=1), labeled),
        _corr("e1", "doc-1", "entity_sentiment", "negative", "", "m@1", "ana", now, "x", entity="ACME"),
        _corr("u1", "weird", "sentiment", "very spicy", "", "m@1", "ana", now, "Some other headline"),
    ]
    out, corr = corrmod.with_corrections(splits, settings, corrections)
    train_keys = {normalise_text(t) for t in out.train["text"]}
    held_ids = {c.document_id for c in corrections if corrmod.is_held_out(c.document_id, 0.2)}
    held_texts = {normalise_text(c.text) for c in corrections if c.document_id in held_ids}
    assert corr.summary["held_out"] > 0 and corr.summary["train_rows"] > 0
    assert set(corr.slice["document_id"]) <= held_ids
    assert not held_texts & train_keys  # no held-out document reaches the training rows
    for frame in (splits.early_stop, splits.promotion, splits.holdout):  # nor does a standard validation document
        assert not {normalise_text(t) for t in frame["text"]} & train_keys
    assert corr.summary["excluded_in_standard_splits"] == 3  # on either side of the hash: out of both
    assert not {f"std-{i}" for i in range(3)} & set(corr.slice["document_id"])
    assert corr.summary["other_fields"] == 1 and corr.summary["unknown_labels"] == 1
    rows = out.train[out.train["source"] == corrmod.SOURCE]
    assert len(rows) == corr.summary["train_rows"]
    assert (rows["weight"] == settings.correction_weight).all()
    assert (out.train[out.train["source"] != corrmod.SOURCE]["weight"] == 1.0).all()
    if "twice" not in held_ids:  # the analyst's latest label replaces the labeled-set row of the same text
        twice = out.train[[normalise_text(t) == normalise_text(labeled) for t in out.train["text"]]]
        assert list(twice["sentiment"]) == ["negative"] and list(twice["source"]) == [corrmod.SOURCE]
    assert out.fingerprint["corrections"]["train_rows"] == corr.summary["train_rows"]


def test_quick_training_reads_the_store_and_saves_the_slice(data_root: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path, data_root)
    corrections = _pattern_corrections(60)
    info = train_quick(settings, datasets=SETS, name="with", corrections=corrections)
    keys = set(np.load(info.path / "train_keys.npy").tolist())
    held = [c for c in corrections if corrmod.is_held_out(c.document_id, settings.correction_holdout_share)]
    trained = [c for c in corrections if c not in held]
    assert held and trained
    assert not {text_key(c.text) for c in held} & keys
    assert {text_key(c.text) for c in trained} <= keys
    slice_frame = corrmod.load_slice(info.path)
    assert sorted(set(slice_frame["document_id"])) == sorted({c.document_id for c in held})
    assert info.corrections is not None and info.corrections["slice"]["score"] == 1.0  # learned the pattern
    assert "Analysts' corrections" in (info.path / "README.md").read_text()
    # without a store (and none given) training runs as before and says so
    messages: list[str] = []
    plain = train_quick(settings, datasets=SETS, name="plain", echo=messages.append)
    assert plain.corrections is not None and plain.corrections["used"] is False
    assert any("training without corrections" in m for m in messages)
    assert corrmod.load_slice(plain.path).empty


def test_the_store_is_read_when_clickhouse_answers(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FakeStore(_pattern_corrections(20))
    monkeypatch.setattr(corrmod, "open_store", lambda s: (store, "fake store"))
    info = train_quick(_settings(tmp_path, data_root), datasets=SETS, name="fetched")
    assert store.calls == ["latest"]
    assert info.corrections is not None and info.corrections["documents"] == 20


def test_promotion_needs_a_gain_on_the_corrections_slice(data_root: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path, data_root)
    registry = Registry.from_settings(settings)
    corrections = _pattern_corrections(60)
    train_quick(settings, datasets=SETS, name="serving", promote=True)
    train_quick(settings, datasets=SETS, name="learned", corrections=corrections)
    train_quick(settings, datasets=SETS, name="same", corrections=corrections)

    # same data, same corrections: a tie on the promotion rows (no regression) and a tie on the slice (no gain)
    registry.promote("learned")
    tie = shadow_promote(settings, "same", hook=False)
    assert tie["corrections_rows"] > 0
    assert tie["candidate_score"] == tie["serving_score"]
    assert tie["candidate_corrections_score"] == tie["serving_corrections_score"]
    assert tie["promoted"] is False and "no gain" in tie["reason"] and "no regression" in tie["reason"]
    assert registry.promoted().name == "learned"  # type: ignore[union-attr]

    # against the model that never saw the corrections: no regression and a gain -> promoted
    registry.promote("serving")
    won = shadow_promote(settings, "learned", hook=False)
    assert won["candidate_corrections_score"] > won["serving_corrections_score"]
    assert won["candidate_score"] >= won["serving_score"]
    assert won["promoted"] is True and registry.promoted().name == "learned"  # type: ignore[union-attr]
    meta = registry.get("learned")
    assert meta.shadow is not None and meta.shadow["serving_corrections_score"] == won["serving_corrections_score"]
    card = (meta.path / "README.md").read_text()
    assert "corrections slice" in card and f"candidate accuracy {won['candidate_corrections_score']}" in card


def test_promotion_refused_on_a_regression_despite_a_slice_gain(data_root: Path, tmp_path: Path) -> None:
    import shutil

    import pandas as pd

    settings = _settings(tmp_path, data_root)
    registry = Registry.from_settings(settings)
    train_quick(settings, datasets=SETS, name="serving", promote=True)
    shuffled = tmp_path / "shuffled"
    shutil.copytree(data_root, shuffled)
    for name in ("tfns_sentiment_train.csv", "tfns_topic_train.csv", "phrasebank_train.csv"):
        frame = pd.read_csv(shuffled / "en" / name)
        frame["label"] = frame["label"].sample(frac=1.0, random_state=1).to_numpy()
        frame.to_csv(shuffled / "en" / name, index=False)
    train_quick(settings, datasets=SETS, name="worse", data_root=shuffled, corrections=_pattern_corrections(60))
    decision = shadow_promote(settings, "worse", hook=False)
    assert decision["candidate_corrections_score"] > decision["serving_corrections_score"]  # a gain on the slice
    assert decision["candidate_score"] < decision["serving_score"]  # but a regression on the standard rows
    assert decision["promoted"] is False and "regression" in decision["reason"]
    assert registry.promoted().name == "serving"  # type: ignore[union-attr]


def test_empty_slice_keeps_the_standard_rule(data_root: Path, tmp_path: Path) -> None:
    settings = _settings(tmp_path, data_root)
    train_quick(settings, datasets=SETS, name="a", promote=True)
    train_quick(settings, datasets=SETS, name="b", corrections=[])
    decision = shadow_promote(settings, "b", hook=False)
    assert decision["corrections_rows"] == 0 and decision["candidate_corrections_score"] is None
    assert decision["promoted"] is False and "<=" in decision["reason"]  # a tie does not beat the serving model
    assert json.loads((Registry.from_settings(settings).get("b").path / "meta.json").read_text())["shadow"]


@pytest.fixture(scope="module")
def micro_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.models import micro_encoder as build

    return build(tmp_path_factory.mktemp("micro-encoder"))


def test_background_trainer_retrains_after_n_corrections(micro_encoder: Path, data_root: Path, tmp_path: Path) -> None:
    from classifier import background

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        "[training]\n"
        f'base_model = "{micro_encoder}"\n'
        'datasets = ["tfns_sentiment"]\nmax_steps = 4\nbatch_size = 16\nmax_length = 32\nprecision = "fp32"\n'
        "eval_every_steps = 2\ncheckpoint_every_steps = 2\n",
        encoding="utf-8",
    )
    settings = _settings(
        tmp_path, data_root, trainer_recipe=str(recipe), model_backend="torch", correction_retrain_after=12
    )
    registry = Registry.from_settings(settings)
    train_quick(settings, name="quick", promote=True)
    store = FakeStore()
    base = background.run(settings, idle=False, store=store)  # the recipe's own job first; no corrections yet
    assert base["state"] == "done" and "trigger" not in base
    assert background.read_progress(settings)["corrections"]["new"] == 0  # type: ignore[index]

    store.rows += _pattern_corrections(5)  # 5 documents x 2 fields = 10 corrections: below 12
    assert background.poll_corrections(settings, store=store) is None
    line = background.summary(background.read_progress(settings))
    assert "corrections: 10/12 new since" in line
    models_before = {m.name for m in registry.list()}

    store.rows += _pattern_corrections(1, start=5)  # the 12th correction
    result = background.poll_corrections(settings, store=store)
    assert result is not None and result["state"] == "done" and result["trigger"] == "corrections"
    assert result["corrections_used"] == 12 and isinstance(result["promoted"], bool)
    assert "candidate_corrections_score" in result and "serving_corrections_score" in result
    new = {m.name for m in registry.list()} - models_before
    assert new == {result["model"]}
    trained = registry.get(result["model"])
    assert trained.corrections is not None and trained.corrections["documents"] == 6
    assert trained.corrections["train_rows"] + trained.corrections["held_out"] == 6
    progress = background.read_progress(settings)
    assert progress is not None and progress["state"] == "done"
    assert background.summary(progress).startswith("done: corrections retrain: ")
    # the retrain counted those corrections: nothing new since, so no second retrain
    assert background.poll_corrections(settings, store=store) is None
    assert "corrections: 0/12 new" in background.summary(background.read_progress(settings))
    assert len(registry.list()) == len(models_before) + 1


def test_status_shows_a_corrections_retrain(tmp_path: Path) -> None:
    from classifier import background

    progress = {
        "state": "training",
        "trigger": "corrections",
        "corrections_used": 57,
        "step": 30,
        "total": 120,
        "eta_s": 60,
        "score": 0.7,
        "best_score": 0.7,
        "best_step": 30,
    }
    assert background.summary(progress).startswith("retraining on 57 corrections: training step 30/120 (25%)")
    background.write_progress(load_settings(data_dir=tmp_path), progress)
    from finpulse.cli import app

    env = {"FINPULSE_DATA_DIR": str(tmp_path), "FINPULSE_STACK_SERVICES": "trainer"}
    result = CliRunner().invoke(app, ["status"], env=env)
    assert "retraining on 57 corrections" in result.output, result.output


def test_report_counts_disagreements_per_model(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finpulse.cli import app

    settings = _settings(tmp_path, data_root)
    plain = train_quick(settings, datasets=SETS, name="plain", promote=True)
    learned = train_quick(settings, datasets=SETS, name="learned", corrections=_pattern_corrections(30))
    rows = _pattern_corrections(4, model_version=plain.model_version)  # 8 corrections against `plain`
    now = datetime.now(UTC)
    rows.append(_corr("same", "doc-x", "sentiment", "neutral", "neutral", plain.model_version, "ana", now, "Calm day"))
    rows.append(_corr("old", "doc-y", "topic", "Macro", "Markets", "gone@123", "ana", now, "Rates and growth"))
    store = FakeStore(rows)
    monkeypatch.setattr(corrmod, "open_store", lambda s, training=True: (store, "fake"))
    env = {"FINPULSE_DATA_DIR": str(settings.data_dir), "FINPULSE_SHARED_DATA_DIR": str(data_root)}
    result = CliRunner().invoke(app, ["models", "corrections", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by_version = {r["model_version"]: r for r in report["models"]}
    assert report["corrections"] == 10 and report["documents_replayed"] == 6
    mine = by_version[plain.model_version]
    assert mine["model"] == "plain" and mine["promoted"] is True
    assert mine["overridden"] == 9 and mine["disagreed"] == 8  # the confirmed label is no disagreement
    assert mine["disagreed_by_field"] == {"sentiment": 4, "topic": 4}
    assert by_version["gone@123"]["model"] is None and by_version["gone@123"]["disagreed"] == 1
    # replay: `plain` never predicts 'M&A | Investments'; `learned` trained on the pattern agrees on it
    assert mine["replay"]["topic"]["disagree"] >= 4
    theirs = by_version[learned.model_version]
    assert theirs["overridden"] == 0 and theirs["replay"]["topic"]["disagree"] < mine["replay"]["topic"]["disagree"]
    table = CliRunner().invoke(app, ["models", "corrections", "--replay", "none"], env=env)
    assert table.exit_code == 0 and "plain *" in table.output and "(not in the registry)" in table.output
    bad = CliRunner().invoke(app, ["models", "corrections", "--replay", "some"], env=env)
    assert bad.exit_code == 2 and "--replay must be one of" in bad.output


def test_report_without_clickhouse_is_a_one_line_error(tmp_path: Path) -> None:
    from finpulse.cli import app
    from finpulse.stack.clickhouse.launch import free_port

    env = {"FINPULSE_DATA_DIR": str(tmp_path), "FINPULSE_CLICKHOUSE_PORT": str(free_port())}
    result = CliRunner().invoke(app, ["models", "corrections"], env=env)
    assert result.exit_code == 1 and "does not answer" in result.output and "Traceback" not in result.output


def test_weighted_loss_is_the_plain_loss_at_weight_one_and_weights_rows() -> None:
    import torch
    from torch import nn

    from classifier.train import IGNORE, weighted_loss

    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    y = torch.tensor([0, 2, IGNORE, 1, 1, IGNORE])
    loss = nn.CrossEntropyLoss(ignore_index=IGNORE, label_smoothing=0.1)
    ones = torch.ones(6)
    assert torch.allclose(weighted_loss(loss, logits, y, ones), loss(logits, y), atol=1e-6)
    # row 0 weighing 3: the same as row 0 appearing three times
    w = torch.tensor([3.0, 1, 1, 1, 1, 1])
    tripled = loss(torch.cat([logits, logits[:1], logits[:1]]), torch.cat([y, y[:1], y[:1]]))
    assert torch.allclose(weighted_loss(loss, logits, y, w), tripled, atol=1e-6)
    assert weighted_loss(loss, logits, torch.full((6,), IGNORE), ones).item() == 0.0  # no labels: no NaN
