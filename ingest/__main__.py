"""`python -m ingest run|replay|generate`: the worker as the supervisor starts it."""

from __future__ import annotations

import typer

from ingest.cli import ingest_app

if __name__ == "__main__":
    typer.main.get_command(ingest_app)(prog_name="python -m ingest")
