"""Compose services run the same `finpulse` commands `finpulse up` runs; docker/stackctl.py is the one table."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from functools import partial

import pytest
import typer

from finpulse.settings import ENV_PREFIX, Settings, load_settings
from finpulse.stack import services, topics
from finpulse.stack.supervisor import ServiceSpec
from tests.unit.docker.compose import Compose, command, environment, is_finpulse, load_stackctl

stackctl = load_stackctl()
PROFILES = ("dev", "full")


def _settings_from(env: dict[str, str]) -> Settings:
    return load_settings(**{k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)})


def _has_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            return False
        raise
    return True


def _finpulse_click():
    from finpulse.cli import app

    return typer.main.get_command(app)


def _describe(cmd) -> dict:
    """A command tree as names and parameter names, comparable across processes (typer vendors click: duck-typed)."""
    if isinstance(getattr(cmd, "commands", None), dict):
        return {name: _describe(sub) for name, sub in sorted(cmd.commands.items())}
    return {"params": sorted(p.name or "" for p in cmd.params)}


# Runs `python -m <module>` with click's entry point replaced by a dump of the command tree it would serve.
_DUMP_MAIN = f"""
import json, runpy, sys
import typer.core
exec({inspect.getsource(_describe)!r})
def dump(self, *args, **kwargs):
    print(json.dumps(_describe(self)))
    raise SystemExit(0)
typer.core.TyperGroup.main = typer.core.TyperCommand.main = dump
sys.argv = [sys.argv[1]]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


# --- the table ---------------------------------------------------------------------------------------------------
def test_table_covers_every_part_finpulse_up_knows() -> None:
    known = set(services._PARTS)
    table = set(stackctl.PARTS) | set(stackctl.SERVER_PARTS) | {stackctl.MODEL_PART} | set(stackctl.LOCAL_ONLY_PARTS)
    assert table == known, f"stackctl.PARTS vs finpulse.stack.services._PARTS: {sorted(table ^ known)}"
    default_parts = {p.strip() for p in Settings.model_fields["stack_services"].default.split(",")}
    assert default_parts <= table


@pytest.mark.parametrize("profile", PROFILES)
def test_every_finpulse_container_is_a_part_of_the_table(profile: str) -> None:
    compose = Compose.for_profile(profile)
    for name, svc in compose.services.items():
        if not is_finpulse(svc) or name == "finpulse-init":
            continue
        part = stackctl.part_of(command(svc))  # fails for a command that is no part's `finpulse` command
        assert name in stackctl.PARTS[part].compose, f"{name} runs {part} but is not in PARTS[{part!r}].compose"
    every = Compose.for_profile("full").all_services
    for part, entry in stackctl.PARTS.items():
        for name in entry.compose:
            assert name in every, f"PARTS[{part!r}] names compose service {name}, which does not exist"


def _part_services(part: str) -> list[tuple[str, dict]]:
    found = {}
    for profile in PROFILES:
        compose = Compose.for_profile(profile)
        for name in stackctl.PARTS[part].compose:
            if name in compose.services:
                found[(profile, name)] = compose.services[name]
    assert found, f"no compose service runs {part}"
    return [(f"{p}:{n}", s) for (p, n), s in found.items()]


@pytest.mark.parametrize("part", sorted(stackctl.PARTS))
def test_compose_command_is_the_supervisors_command(part: str) -> None:
    """Each compose service's command == the part's service_spec(settings).argv() with the service's settings."""
    if not _has_module(f"{part}.service") or not hasattr(importlib.import_module(f"{part}.service"), "service_spec"):
        pytest.skip(f"{part}.service:service_spec does not exist yet; compose command unchecked")
    for label, svc in _part_services(part):
        env = environment(svc)
        spec = stackctl.service_spec(part, _settings_from(env))
        assert spec.argv is not None, f"{part}: the supervisor runs no command"
        expected = stackctl.finpulse_argv(spec.argv())
        assert command(svc) == expected, f"{label}: compose runs {command(svc)}, `finpulse up` runs {expected}"
        for key, value in spec.env.items():  # extra environment the supervisor gives the child
            assert env.get(key) == value, f"{label}: the supervisor sets {key}={value!r} for {part}"


@pytest.mark.parametrize("part", sorted(stackctl.PARTS))
def test_compose_command_exists_in_the_finpulse_cli(part: str) -> None:
    group = _finpulse_click()
    entry = stackctl.PARTS[part]
    if entry.cli[0] not in group.commands:
        pytest.skip(f"`finpulse {entry.cli[0]}` is not registered yet ({part}.cli)")
    for label, svc in _part_services(part):
        cmd = group
        path = command(svc)[1:]
        for word in path:
            if word.startswith("-"):
                break
            assert word in getattr(cmd, "commands", {}), f"{label}: no command `{word}` in `finpulse {' '.join(path)}`"
            cmd = cmd.commands[word]
        assert not hasattr(cmd, "commands"), f"{label}: {path} is a command group, not a command"


@pytest.mark.parametrize("part", sorted(p for p, e in stackctl.PARTS.items() if e.module))
def test_python_m_module_is_the_same_program_as_finpulse_group(part: str) -> None:
    """The table's claim `python -m <module>` == `finpulse <cli>`: both list the same commands."""
    entry = stackctl.PARTS[part]
    if not _has_module(f"{entry.module}.__main__") or entry.cli[0] not in _finpulse_click().commands:
        pytest.skip(f"{entry.module}/__main__.py or `finpulse {entry.cli[0]}` does not exist yet")

    via_module = json.loads(
        subprocess.run(
            [sys.executable, "-c", _DUMP_MAIN, entry.module],
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")},
            timeout=120,
            check=True,
        ).stdout
    )
    group = _finpulse_click()
    for word in entry.cli:
        group = group.commands[word]
    assert via_module and via_module == _describe(group)


@pytest.mark.parametrize("part", sorted(p for p, e in stackctl.PARTS.items() if e.wraps))
def test_finpulse_command_launches_what_the_supervisor_runs(part: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """For a `wraps` part, `finpulse <cli>` itself starts the supervisor's argv (same settings, same arguments)."""
    entry = stackctl.PARTS[part]
    if not _has_module(f"{part}.service") or entry.cli[0] not in _finpulse_click().commands:
        pytest.skip(f"{part}.service or `finpulse {entry.cli[0]}` does not exist yet")
    from typer.testing import CliRunner

    from finpulse.cli import app

    for label, svc in _part_services(part):
        env = environment(svc)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        expected = stackctl.service_spec(part, _settings_from(env)).argv()
        launched: list[list[str]] = []

        def fake(argv, *args, launched=launched, **kwargs):
            launched.append(list(argv))
            return 0

        monkeypatch.setattr(subprocess, "call", fake)
        monkeypatch.setattr(subprocess, "run", lambda argv, *a, **k: subprocess.CompletedProcess(fake(argv), 0))
        result = CliRunner().invoke(app, command(svc)[1:])
        assert result.exit_code == 0, f"{label}: {result.output}"
        assert launched == [expected], f"{label}: `{' '.join(command(svc))}` launched {launched}, not {expected}"


# --- stackctl --------------------------------------------------------------------------------------------------
def test_finpulse_argv_normalises_the_supervisors_forms() -> None:
    py = sys.executable
    assert stackctl.finpulse_argv([py, "-m", "finpulse", "up"]) == ["finpulse", "up"]
    assert stackctl.finpulse_argv([py, "-m", "ingest", "run", "--config", "x"]) == [
        "finpulse", "ingest", "run", "--config", "x",
    ]  # fmt: skip
    assert stackctl.finpulse_argv(["/opt/venv/bin/finpulse", "alerts", "run"]) == ["finpulse", "alerts", "run"]
    streamlit = ["python3.11", "-m", "streamlit", "run", "/x/dashboard/app.py", "--server.port", "1"]
    assert stackctl.finpulse_argv(streamlit) == ["finpulse", "dashboard"]
    with pytest.raises(stackctl.CommandError):
        stackctl.finpulse_argv([py, "-m", "somethingelse"])
    with pytest.raises(stackctl.CommandError):
        stackctl.finpulse_argv(["streamlit", "run", "app.py"])


def test_part_of_reads_a_container_command_behind_an_init() -> None:
    assert stackctl.part_of(["/sbin/docker-init", "--", "finpulse", "ingest", "run"]) == "ingest"
    assert stackctl.part_of(["/opt/venv/bin/python", "-m", "finpulse", "dashboard"]) == "dashboard"
    assert stackctl.part_of(["python", "-m", "finpulse", "stream", "run", "--index", "0"]) == "stream"
    with pytest.raises(stackctl.CommandError):
        stackctl.part_of(["finpulse", "train"])


def test_init_uses_the_supervisors_setup_for_external_servers() -> None:
    settings = load_settings(
        kafka_bootstrap="kafka-1:9092,kafka-2:9092", clickhouse_url="http://u:p@clickhouse:8123/finpulse"
    )
    kafka = stackctl.service_spec("kafka", settings)
    clickhouse = stackctl.service_spec("clickhouse", settings)
    assert kafka.argv is None and clickhouse.argv is None  # external: nothing to start
    assert isinstance(kafka.after_start, partial) and kafka.after_start.func is topics.ensure_topics
    from warehouse import migrate

    assert isinstance(clickhouse.after_start, partial) and clickhouse.after_start.func is migrate.migrate


def test_wait_and_set_up_waits_for_health_then_sets_up_in_order() -> None:
    calls: list[str] = []
    answers = iter([False, True])

    def spec(name: str, healthy) -> ServiceSpec:
        return ServiceSpec(name=name, endpoint=name, healthy=healthy, after_start=lambda: calls.append(name))

    specs = [spec("kafka", lambda: next(answers)), spec("clickhouse", lambda: True)]
    stackctl.time.sleep = lambda _s: calls.append("sleep")  # type: ignore[attr-defined]
    try:
        stackctl.wait_and_set_up(specs, timeout_s=60, echo=lambda _m: None)
    finally:
        import time

        stackctl.time.sleep = time.sleep  # type: ignore[attr-defined]
    assert calls == ["sleep", "kafka", "clickhouse"]


def test_wait_and_set_up_refuses_local_servers_and_times_out() -> None:
    local = ServiceSpec(name="kafka", endpoint="x", healthy=lambda: True, argv=lambda: ["java"])
    with pytest.raises(stackctl.CommandError, match="FINPULSE_KAFKA_BOOTSTRAP"):
        stackctl.wait_and_set_up([local], timeout_s=1)
    never = ServiceSpec(name="clickhouse", endpoint="x", healthy=lambda: False)
    with pytest.raises(TimeoutError):
        stackctl.wait_and_set_up([never], timeout_s=0)
