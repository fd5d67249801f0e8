"""The one TOML loader: each failure becomes the caller's error type with the file named, and every file a user
writes (settings, sources, rules, training recipes, companies) answers through it the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alerts.rules import RuleFileError, load_rules_file
from classifier.config import RecipeError, TrainingArguments
from finpulse.settings import ConfigFileError, Settings, load_settings
from finpulse.toml_config import load_toml
from ingest.config import SourceConfigError, build_config, load_sources


class Oops(ValueError):
    pass


def test_a_good_file_is_its_table(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('a = 1\n[b]\nc = "d"\n', encoding="utf-8")
    assert load_toml(path, error=Oops, what="test file") == {"a": 1, "b": {"c": "d"}}


def test_failures_become_the_callers_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(Oops, match=r"^test file .*missing\.toml does not exist \(set X\)$"):
        load_toml(missing, error=Oops, what="test file", hint="set X")
    with pytest.raises(Oops, match=r"^test file .*missing\.toml does not exist$"):
        load_toml(missing, error=Oops, what="test file")
    broken = tmp_path / "broken.toml"
    broken.write_text("a = = 1\n", encoding="utf-8")
    with pytest.raises(Oops, match=r"broken\.toml is not valid TOML: .*line 1"):
        load_toml(broken, error=Oops, what="test file")
    latin = tmp_path / "latin.toml"
    latin.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(Oops, match=r"latin\.toml is not UTF-8 text \(byte 11\)"):
        load_toml(latin, error=Oops, what="test file")
    with pytest.raises(Oops, match=r"test file .* cannot be read: Is a directory"):
        load_toml(tmp_path, error=Oops, what="test file")


def _settings(path: Path) -> Any:
    return Settings(data_dir=path.parent, ingest_companies_file=path)


LOADERS: list[tuple[str, type[Exception], Callable[[Path, pytest.MonkeyPatch], Any]]] = [
    ("sources file", SourceConfigError, lambda p, mp: load_sources(p)),
    ("rules file", RuleFileError, lambda p, mp: load_rules_file(p)),
    ("recipe", RecipeError, lambda p, mp: TrainingArguments.from_toml(p)),
    ("companies file", SourceConfigError, lambda p, mp: build_config(_settings(p))),
    ("config file", ConfigFileError, lambda p, mp: (mp.setenv("FINPULSE_CONFIG", str(p)), load_settings())),
]


@pytest.mark.parametrize(("what", "error", "load"), LOADERS, ids=[w for w, _, _ in LOADERS])
def test_every_user_file_answers_through_the_loader(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    error: type[Exception],
    load: Callable[[Path, pytest.MonkeyPatch], Any],
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[x]\n", encoding="utf-8")
    with pytest.raises(error, match=rf"^{what} .*broken\.toml is not valid TOML"):
        load(broken, monkeypatch)
    with pytest.raises(error, match=rf"^{what} .*gone\.toml does not exist"):
        load(tmp_path / "gone.toml", monkeypatch)
