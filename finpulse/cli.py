"""The `finpulse` command. Each product part registers its own commands; this module only wires them."""

from __future__ import annotations

import importlib
import logging
import sys

import typer
from pydantic import ValidationError

from finpulse.logs import setup_logging
from finpulse.settings import ENV_PREFIX, ConfigFileError, Settings, load_settings

app = typer.Typer(
    name="finpulse",
    help="FinPulse: streaming financial sentiment monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks that print their figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

log = logging.getLogger("finpulse")


def get_settings() -> Settings:
    """Settings for a command, with a clear message (not a traceback) for a bad value or config file."""
    try:
        settings = load_settings()
    except ConfigFileError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        typer.secho(f"error: setting {field} (env FINPULSE_{field.upper()}): {err['msg']}", fg="red", err=True)
        raise typer.Exit(2) from exc
    setup_logging(settings.log_level, settings.log_format)
    return settings


@app.command("config")
def config_command(
    markdown: bool = typer.Option(False, "--markdown", help="The settings reference as a Markdown table."),
    show_secrets: bool = typer.Option(False, "--show-secrets", help="Print passwords and secrets instead of ***."),
) -> None:
    """Print the effective settings (or the reference table of every setting); secrets are masked."""
    if markdown:
        typer.echo(settings_table())
        return
    settings = get_settings()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if not show_secrets:
            value = masked(name, value)
        typer.echo(f"{ENV_PREFIX}{name.upper()}={value}")


_SECRET_WORDS = ("password", "secret", "token", "api_key", "slack")


def masked(name: str, value: object) -> object:
    """``***`` for a set secret setting; a URL keeps everything but its password."""
    if value is None or value == "":
        return value
    if any(word in name for word in _SECRET_WORDS):
        return "***"
    if isinstance(value, str) and "://" in value and "@" in value:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.password is not None:
            netloc = f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"
            return parts._replace(netloc=netloc).geturl()
    return value


def settings_table() -> str:
    """Markdown reference of every setting: env var, default, meaning (README's configuration table)."""
    rows = ["| env var | default | meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        default = "(computed)" if info.default_factory else repr(info.default)
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | `{default}` | {info.description or ''} |")
    return "\n".join(rows)


# Command modules register themselves with `register(app, bench_app)`: the stack commands (up, down, status,
# init), training and the model registry, then every process part of the parts table (`finpulse <part>`). An
# import error fails the command loudly: no module here is optional.
COMMAND_MODULES = ("finpulse.stack.commands", "classifier.cli")


def command_modules() -> tuple[str, ...]:
    from finpulse.stack import parts

    return COMMAND_MODULES + tuple(p.commands for p in parts.PARTS if p.commands)


def _register_parts() -> None:
    for name in command_modules():
        importlib.import_module(name).register(app, bench_app)


_register_parts()


def main() -> None:  # pragma: no cover - console entry
    from finpulse.files import private_umask

    private_umask()  # files 0600, dirs 0700, for this process and every service it starts
    sys.exit(app())
