"""Background training: checkpoint + resume gives the uninterrupted model; shadow promotion refuses a worse or an
unloadable model; progress shows in `finpulse status`; the trainer job runs once per recipe and data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from classifier import background
from classifier.config import TrainingArguments
from classifier.quick import train_quick
from classifier.registry import Registry
from classifier.shadow import shadow_promote
from classifier.train import TrainingInterrupted, train
from finpulse.settings import load_settings
from tests.models import micro_encoder as build_micro_encoder


@pytest.fixture(scope="module")
def micro_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_micro_encoder(tmp_path_factory.mktemp("micro-encoder"))


def _args(base: Path, **changes: object) -> TrainingArguments:
    defaults: dict[str, object] = {
        "base_model": str(base),
        "datasets": ["tfns_sentiment", "tfns_topic"],
        "max_steps": 12,
        "batch_size": 16,
        "max_length": 32,
        "threads": 1,
        "precision": "fp32",
        "eval_every_steps": 4,
        "checkpoint_every_steps": 3,
        "patience": 10,
    }
    return TrainingArguments(**{**defaults, **changes})  # type: ignore[arg-type]


def _weights(path: Path) -> dict[str, np.ndarray]:
    return load_file(str(path / "model.safetensors"))


def test_killed_training_resumes_from_its_checkpoint(micro_encoder: Path, data_root: Path, tmp_path: Path) -> None:
    args = _args(micro_encoder)
    whole = load_settings(data_dir=tmp_path / "a", shared_data_dir=data_root)
    reference = train(args, whole, name="m", progress=False, device="cpu")

    settings = load_settings(data_dir=tmp_path / "b", shared_data_dir=data_root)
    seen: list[int] = []
    with pytest.raises(TrainingInterrupted, match="stopped at step 7"):
        train(
            args,
            settings,
            name="m",
            progress=False,
            device="cpu",
            checkpoint_dir=tmp_path / "ckpt",
            on_progress=lambda p: seen.append(p["step"]),
            should_stop=lambda: len(seen) >= 7,  # "killed" after step 7 (a SIGTERM sets this flag)
        )
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()
    assert Registry.from_settings(settings).list() == []  # nothing half-trained reaches the registry
    resumed_steps: list[int] = []
    info = train(
        args,
        settings,
        name="m",
        progress=False,
        device="cpu",
        checkpoint_dir=tmp_path / "ckpt",
        on_progress=lambda p: resumed_steps.append(p["step"]),
    )
    assert resumed_steps[0] == 8  # resumed after the checkpoint of step 7, not from scratch
    prints = json.loads((info.path / "data.json").read_text())
    ref_prints = json.loads((reference.path / "data.json").read_text())
    assert prints["training"]["resumed_from_step"] == 7 and prints["training"]["steps"] == 12
    assert [h["score"] for h in prints["training"]["history"]] == [
        h["score"] for h in ref_prints["training"]["history"]
    ]
    a, b = _weights(reference.path), _weights(info.path)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6, err_msg=key)


def test_splits_are_disjoint_and_recorded(micro_encoder: Path, data_root: Path) -> None:
    from classifier.data import frame_fingerprint
    from classifier.train import prepare_splits

    splits = prepare_splits(_args(micro_encoder), data_root)
    keys = [set(s["text"]) for s in (splits.train, splits.early_stop, splits.promotion, splits.holdout)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not keys[i] & keys[j]
    assert all(len(k) > 0 for k in keys)
    assert splits.fingerprint["promotion_sha256"] == frame_fingerprint(splits.promotion)
    again = prepare_splits(_args(micro_encoder), data_root)
    assert again.fingerprint == splits.fingerprint  # seeded: the same rows every time


@pytest.fixture
def serving(data_root: Path, tmp_path: Path) -> dict:
    settings = load_settings(data_dir=tmp_path / "dd", shared_data_dir=data_root)
    info = train_quick(settings, name="good", promote=True)
    return {"settings": settings, "info": info}


def _shuffled_root(data_root: Path, tmp_path: Path) -> Path:
    """The same texts with their labels shuffled: a model trained on it is worse by construction."""
    root = tmp_path / "shuffled"
    shutil.copytree(data_root, root)
    for name in ("tfns_sentiment_train.csv", "tfns_topic_train.csv", "phrasebank_train.csv"):
        frame = pd.read_csv(root / "en" / name)
        frame["label"] = frame["label"].sample(frac=1.0, random_state=1).to_numpy()
        frame.to_csv(root / "en" / name, index=False)
    return root


def test_shadow_promotion_refuses_a_worse_model(serving: dict, data_root: Path, tmp_path: Path) -> None:
    settings = serving["settings"]
    train_quick(settings, name="worse", data_root=_shuffled_root(data_root, tmp_path))
    decision = shadow_promote(settings, "worse")
    assert decision["promoted"] is False and decision["serving"] == "good"
    assert decision["candidate_score"] < decision["serving_score"]
    assert decision["rows"] > 0
    registry = Registry.from_settings(settings)
    assert registry.promoted().name == "good"  # type: ignore[union-attr]
    meta = registry.get("worse")
    assert meta.shadow is not None and meta.shadow["serving_score"] == decision["serving_score"]
    card = (meta.path / "README.md").read_text()
    assert "Shadow evaluation" in card and "not promoted" in card


def test_shadow_promotion_promotes_a_better_model_and_runs_the_hook(
    serving: dict, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = serving["settings"]
    registry = Registry.from_settings(settings)
    train_quick(settings, name="worse", data_root=_shuffled_root(data_root, tmp_path), promote=True)
    import stream.relabel

    calls: list[dict] = []
    monkeypatch.setattr(
        stream.relabel, "relabel_recent", lambda s, *, hours=None, progress=False: calls.append({"hours": hours})
    )
    decision = shadow_promote(settings, "good")
    assert decision["promoted"] is True and decision["candidate_score"] > decision["serving_score"]
    assert registry.promoted().name == "good"  # type: ignore[union-attr]
    assert calls == [{"hours": None}]  # on_promoted ran the relabel backfill once


def test_a_model_that_fails_to_load_is_never_promoted(serving: dict, tmp_path: Path) -> None:
    settings = serving["settings"]
    registry = Registry.from_settings(settings)
    train_quick(settings, name="broken")
    (registry.get("broken").path / "quick.npz").write_bytes(b"not an npz file")
    decision = shadow_promote(settings, "broken")
    assert decision["promoted"] is False and "failed to load" in decision["reason"]
    assert registry.promoted().name == "good"  # type: ignore[union-attr]
    assert registry.get("broken").shadow["promoted"] is False  # type: ignore[index]


def test_progress_is_shown_in_finpulse_status(tmp_path: Path) -> None:
    from finpulse.cli import app

    settings = load_settings(data_dir=tmp_path)
    background.write_progress(
        settings,
        {
            "state": "training",
            "step": 120,
            "total": 480,
            "eta_s": 600,
            "score": 0.8123,
            "best_score": 0.8123,
            "best_step": 100,
        },
    )
    env = {"FINPULSE_DATA_DIR": str(tmp_path), "FINPULSE_STACK_SERVICES": "trainer"}
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 0, result.output  # this test process owns the progress file's pid: healthy
    assert "trainer" in result.output
    assert "training step 120/480 (25%)" in result.output and "ETA 10m" in result.output
    assert "validation score 0.8123" in result.output
    report = json.loads(CliRunner().invoke(app, ["status", "--json"], env=env).stdout)
    assert report["parts"]["trainer"]["details"]["step"] == 120
    # a crashed trainer is reported down (the supervisor restarts it and it resumes)
    background.write_progress(settings, {"state": "failed", "message": "boom; retrying"})
    assert CliRunner().invoke(app, ["status"], env=env).exit_code == 1
    progress = json.loads((tmp_path / "trainer" / "progress.json").read_text())
    assert progress["pid"] == os.getpid()


def test_trainer_job_trains_shadow_evaluates_and_runs_once(
    micro_encoder: Path, data_root: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        "[training]\n"
        f'base_model = "{micro_encoder}"\n'
        'datasets = ["tfns_sentiment"]\nmax_steps = 6\nbatch_size = 16\nmax_length = 32\nprecision = "fp32"\n'
        "eval_every_steps = 3\ncheckpoint_every_steps = 2\n",
        encoding="utf-8",
    )
    # torch backend: this test is about the trainer's job; the ONNX backend has its own tests
    settings = load_settings(
        data_dir=tmp_path / "dd", shared_data_dir=data_root, trainer_recipe=str(recipe), model_backend="torch"
    )
    quick = train_quick(settings, name="quick", promote=True)
    result = background.run(settings, idle=False)
    assert result["state"] == "done" and result["serving"] == "quick"
    assert result["candidate_score"] is not None and result["serving_score"] is not None
    # a 6-step micro encoder does not beat the quick model: the quick model keeps serving
    assert result["promoted"] is False
    assert Registry.from_settings(settings).promoted().name == quick.name  # type: ignore[union-attr]
    progress = background.read_progress(settings)
    assert progress is not None and progress["state"] == "done" and "not promoted" in progress["message"]
    again = background.run(settings, idle=False)  # same recipe and data: the finished job is not trained again
    assert again["model"] == result["model"] and len(Registry.from_settings(settings).list()) == 2


def test_trainer_without_data_waits(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "dd", shared_data_dir=tmp_path / "none")
    assert background.run(settings, idle=False) == {"state": "no_data"}
    assert background.summary(background.read_progress(settings)).startswith("no_data")


def test_pipeline_health_page_shows_training_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from dashboard import data, pipeline

    empty = pd.DataFrame()
    for name in ("throughput", "confidence_over_time", "model_versions"):
        monkeypatch.setattr(data, name, lambda *a, **k: empty)
    monkeypatch.setattr(data, "freshness", lambda: {"docs_last_hour": 0, "last_classified_at": None})
    monkeypatch.setattr(data, "kafka_health", lambda: pipeline.KafkaHealth(note="not reachable"))
    monkeypatch.setattr(data, "stream_metrics", lambda: (empty, "not reachable"))
    monkeypatch.setattr(data, "settings", lambda: load_settings(data_dir=tmp_path))
    background.write_progress(
        load_settings(data_dir=tmp_path),
        {"state": "training", "step": 50, "total": 200, "eta_s": 90, "score": 0.7, "best_score": 0.7, "best_step": 50},
    )
    app = AppTest.from_string("from dashboard.views import health\nhealth.render()", default_timeout=20)
    app.run()
    assert not app.exception, app.exception
    texts = [str(getattr(p, "text", "") or "") for p in app.get("progress")]
    assert any("training step 50/200 (25%)" in t for t in texts), texts
