"""`python -m finpulse.docs`: regenerate the README's settings table from finpulse/settings.py."""

from pathlib import Path

from finpulse.cli import settings_table

START, END = "<!-- settings-table:start", "<!-- settings-table:end"


def update_readme(path: Path = Path("README.md")) -> None:
    text = path.read_text(encoding="utf-8")
    start = text.index("-->", text.index(START)) + 3
    end = text.index(END)
    path.write_text(text[:start] + "\n" + settings_table() + "\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    update_readme()
