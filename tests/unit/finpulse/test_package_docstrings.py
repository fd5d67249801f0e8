"""Every product package says what it is in its __init__.py docstring, not a placeholder ("FinPulse: stream.")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PACKAGES = sorted(
    p.parent.relative_to(REPO).as_posix()
    for top in ("finpulse", "ingest", "classifier", "stream", "warehouse", "alerts", "dashboard")
    for p in (REPO / top).rglob("__init__.py")
    if "__pycache__" not in p.parts
)


def test_the_product_packages_are_found() -> None:
    assert {"finpulse", "ingest", "ingest/sources", "stream", "warehouse", "alerts", "dashboard"} <= set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_docstring_says_what_it_is(package: str) -> None:
    doc = ast.get_docstring(ast.parse((REPO / package / "__init__.py").read_text(encoding="utf-8")))
    assert doc, f"{package}/__init__.py has no docstring"
    first = doc.split("\n\n")[0]
    assert not re.fullmatch(r"FinPulse:?\s*\w+\.?", first.strip()), f"{package}: placeholder docstring {first!r}"
    assert len(first.split()) >= 6 and first.rstrip().endswith((".", ":")), f"{package}: {first!r}"
