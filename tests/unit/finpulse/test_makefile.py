"""The dev loop: `make lint` and `make unit` need only the Python install, never the Kafka jars (so no Maven)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FETCH_JARS = "python -m finpulse.stack.kafka"
PIP_INSTALL = "pip install -q -c constraints.txt"


def _dry_run(*targets: str) -> str:
    """The commands `make` would run for ``targets`` from scratch (-B: every prerequisite out of date)."""
    make = shutil.which("make")
    assert make is not None, "make is not on PATH"
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    proc = subprocess.run(
        [make, "--no-print-directory", "-n", "-B", "-C", str(ROOT), *targets],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("targets", [("lint",), ("unit",), ("lint", "unit")])
def test_lint_and_unit_install_python_but_not_the_jars(targets: tuple[str, ...]) -> None:
    commands = _dry_run(*targets)
    assert PIP_INSTALL in commands
    assert FETCH_JARS not in commands


def test_lint_runs_ruff_and_mypy() -> None:
    commands = _dry_run("lint").splitlines()
    assert any(c.startswith(".venv/bin/ruff check") for c in commands)
    assert any(c.startswith(".venv/bin/mypy") for c in commands)


@pytest.mark.parametrize("target", ["install", "up", "integration", "test"])
def test_the_stack_targets_install_python_and_the_jars(target: str) -> None:
    commands = _dry_run(target)
    assert PIP_INSTALL in commands
    assert FETCH_JARS in commands
    # The packages first: the jars step runs the installed package.
    assert commands.index(PIP_INSTALL) < commands.index(FETCH_JARS)
