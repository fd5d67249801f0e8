"""The README's promises that code can check: the newcomer commands and the settings reference."""

from __future__ import annotations

from pathlib import Path

from finpulse.cli import settings_table
from finpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_readme_opens_with_the_two_newcomer_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "make up" in first_block and "make test" in first_block
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_settings_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- settings-table:start", 1)[1].split("-->", 1)[1].split("<!-- settings-table:end")[0]
    assert table.strip() == settings_table().strip(), "regenerate with `finpulse config --markdown`"


def test_every_setting_is_documented() -> None:
    missing = [name for name, info in Settings.model_fields.items() if not info.description]
    assert not missing, f"settings without a description: {missing}"
