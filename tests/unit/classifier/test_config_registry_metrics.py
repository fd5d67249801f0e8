from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifier.config import RecipeError, TrainingArguments, builtin_recipe, load_recipe
from classifier.metrics import classification_report, expected_calibration_error
from classifier.registry import META_FILE, Registry, RegistryError


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_size", 0, "batch_size"),
        ("learning_rate", 2.0, "learning_rate"),
        ("val_fraction", 0.7, "val_fraction"),
        ("max_length", 4, "max_length"),
        ("datasets", ["nope"], "unknown dataset"),
        ("precision", "int4", "precision"),
    ],
)
def test_training_arguments_validate(field: str, value: object, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        TrainingArguments(**{field: value})


def test_recipes(tmp_path: Path) -> None:
    default = builtin_recipe("default")
    # trained to convergence: no step cap, no wall-clock budget (a decision must not depend on machine load)
    assert default.max_steps is None and not hasattr(default, "time_budget_s")
    assert default.patience >= 2 and default.eval_every_steps
    assert builtin_recipe("full").epochs > default.epochs
    path = tmp_path / "r.toml"
    path.write_text("[training]\nepochs = 1.5\nbatch_size = 8\n", encoding="utf-8")
    assert load_recipe(path).batch_size == 8
    path.write_text("[training]\nepochz = 1\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="unknown key"):
        load_recipe(path)
    assert default.replace(seed=5, epochs=None).seed == 5
    with pytest.raises(RecipeError):
        default.replace(batch_size=-1)


def _fake_model(root: Path, name: str, created: str) -> None:
    (root / name).mkdir(parents=True)
    meta = {"name": name, "model_version": f"{name}@x", "created_at": created, "base_model": "b", "languages": ["en"]}
    (root / name / META_FILE).write_text(json.dumps(meta), encoding="utf-8")


def test_registry(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    assert registry.list() == [] and registry.promoted() is None
    with pytest.raises(RegistryError, match="no promoted model"):
        registry.resolve(None)
    _fake_model(registry.root, "m2", "2026-01-02")
    _fake_model(registry.root, "m1", "2026-01-01")
    assert [i.name for i in registry.list()] == ["m1", "m2"]
    assert registry.resolve("latest").name == "m2"
    assert registry.promote("m1").promoted
    assert registry.promoted().name == "m1"  # type: ignore[union-attr]
    assert [i.promoted for i in registry.list()] == [True, False]
    assert registry.resolve(None) == registry.root / "m1"
    assert registry.resolve(str(registry.root / "m2")) == (registry.root / "m2").resolve()
    with pytest.raises(RegistryError, match="no model 'zz'"):
        registry.promote("zz")
    with pytest.raises(RegistryError, match="already exists"):
        registry.staging_dir("m1")


def test_metrics() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    report = classification_report(np.array([0, 1, 1, 1]), probs, ["a", "b"])
    assert report["accuracy"] == pytest.approx(0.75)
    assert report["confusion"] == [[1, 0], [1, 2]]
    assert report["per_class"]["b"]["recall"] == pytest.approx(2 / 3)
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    # Confident and always right -> calibrated; confident and always wrong -> ECE ~ confidence.
    sure = np.array([[1.0, 0.0]] * 4)
    assert expected_calibration_error(sure, np.zeros(4, dtype=int)) == pytest.approx(0.0)
    assert expected_calibration_error(sure, np.ones(4, dtype=int)) == pytest.approx(1.0)
