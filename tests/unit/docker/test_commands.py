"""Compose services run the same `finpulse` commands `finpulse up` runs; all read finpulse/stack/parts.py."""

from __future__ import annotations

import os
import re
import sys
from functools import partial
from pathlib import Path

import pytest
import typer

from finpulse.settings import ENV_PREFIX, Settings, load_settings
from finpulse.stack import parts, services, topics
from finpulse.stack.errors import StackError
from finpulse.stack.supervisor import ServiceSpec
from tests.unit.docker.compose import Compose, command, environment, is_finpulse, load_stackctl

stackctl = load_stackctl()
PROFILES = ("dev", "full")


def _settings_from(env: dict[str, str]) -> Settings:
    return load_settings(**{k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)})


def _finpulse_click():
    from finpulse.cli import app

    return typer.main.get_command(app)


# --- the table ---------------------------------------------------------------------------------------------------
def test_cli_supervisor_and_stackctl_list_exactly_the_parts_table() -> None:
    names = [p.name for p in parts.PARTS]
    assert len(set(names)) == len(names)
    # the settings default runs every part, in the table's order
    assert Settings.model_fields["stack_services"].default.split(",") == names
    # the supervisor: one spec per part, named like it, in that order
    specs = services.service_specs(load_settings())
    assert [s.name for s in specs] == names
    # the CLI: `finpulse <part>` for exactly the process parts (servers and the model step run no command)
    from finpulse.cli import COMMAND_MODULES, command_modules

    group = _finpulse_click()
    processes = {p.name for p in parts.PARTS if p.kind == "process"}
    assert set(group.commands) & set(names) == processes
    assert command_modules() == COMMAND_MODULES + tuple(p.commands for p in parts.PARTS if p.commands)
    # stackctl: the container parts of the table; the servers it sets up are the table's servers
    assert {p.name: p for p in parts.PARTS if p.containers} == stackctl.PARTS
    assert stackctl.parts.SERVERS == ("kafka", "clickhouse")
    assert tuple(p.name for p in parts.PARTS if p.kind == "server") == stackctl.parts.SERVERS


def test_an_unknown_or_broken_part_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StackError, match=r"unknown part 'ingst'.*known: kafka, clickhouse"):
        services.service_specs(load_settings(stack_services="kafka,ingst"))
    broken = parts.Part("ingest", "ingest.not_a_module:service_spec", "process", "ingest.cli")
    monkeypatch.setattr(parts, "PARTS", tuple(broken if p.name == "ingest" else p for p in parts.PARTS))
    with pytest.raises(ModuleNotFoundError, match=r"ingest\.not_a_module"):
        services.service_specs(load_settings(stack_services="ingest"))
    with pytest.raises(parts.UnknownPart, match="unknown part 'nope'"):
        parts.get("nope")


def test_parts_table_rows_are_consistent() -> None:
    with pytest.raises(ValueError, match="names its commands module"):
        parts.Part("x", "m:f", "process")
    with pytest.raises(ValueError, match="names its commands module"):
        parts.Part("x", "m:f", "setup", "m.cli")
    with pytest.raises(ValueError, match="only process parts"):
        parts.Part("x", "m:f", "server", containers=("x",))
    with pytest.raises(ValueError, match="no FinPulse process"):
        parts.finpulse_command("kafka")
    assert parts.finpulse_command("ingest", "run") == [sys.executable, "-m", "finpulse", "ingest", "run"]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_finpulse_container_is_a_part_of_the_table(profile: str) -> None:
    compose = Compose.for_profile(profile)
    for name, svc in compose.services.items():
        if not is_finpulse(svc) or name == "finpulse-init":
            continue
        part = stackctl.part_of(command(svc))  # fails for a command that is no part's `finpulse` command
        assert name in stackctl.PARTS[part].containers, f"{name} runs {part} but is not in its parts.Part.containers"
    every = Compose.for_profile("full").all_services
    for part, entry in stackctl.PARTS.items():
        for name in entry.containers:
            assert name in every, f"part {part!r} names compose service {name}, which is not in compose.yaml"


def _part_services(part: str) -> list[tuple[str, dict]]:
    found = {}
    for profile in PROFILES:
        compose = Compose.for_profile(profile)
        for name in stackctl.PARTS[part].containers:
            if name in compose.services:
                found[(profile, name)] = compose.services[name]
    assert found, f"no compose service runs {part}"
    return [(f"{p}:{n}", s) for (p, n), s in found.items()]


@pytest.mark.parametrize("part", sorted(stackctl.PARTS))
def test_compose_command_is_the_supervisors_command(part: str) -> None:
    """Each compose service's command == the part's service_spec(settings).argv() with the service's settings."""
    for label, svc in _part_services(part):
        env = environment(svc)
        spec = stackctl.service_spec(part, _settings_from(env))
        assert spec.argv is not None, f"{part}: the supervisor runs no command"
        assert spec.argv()[:4] == [sys.executable, "-m", "finpulse", part], f"{part}: not started as `finpulse {part}`"
        expected = stackctl.finpulse_argv(spec.argv())
        assert command(svc) == expected, f"{label}: compose runs {command(svc)}, `finpulse up` runs {expected}"
        for key, value in spec.env.items():  # extra environment the supervisor gives the child
            assert env.get(key) == value, f"{label}: the supervisor sets {key}={value!r} for {part}"


@pytest.mark.parametrize("part", sorted(parts.PROCESSES))
def test_every_process_part_starts_through_its_finpulse_command(part: str) -> None:
    spec = parts.service_spec(part, load_settings())
    assert spec.argv is not None
    argv = spec.argv()
    assert argv[:4] == [sys.executable, "-m", "finpulse", part]
    group = _finpulse_click()
    cmd = group.commands[part]
    for word in argv[4:]:
        if word.startswith("-"):
            break
        assert word in getattr(cmd, "commands", {}), f"`finpulse {part}` has no command `{word}`"
        cmd = cmd.commands[word]
    assert not hasattr(cmd, "commands"), f"{argv[3:]} is a command group, not a command"


@pytest.mark.parametrize("part", sorted(stackctl.PARTS))
def test_compose_command_exists_in_the_finpulse_cli(part: str) -> None:
    group = _finpulse_click()
    for label, svc in _part_services(part):
        cmd = group
        path = command(svc)[1:]
        for word in path:
            if word.startswith("-"):
                break
            assert word in getattr(cmd, "commands", {}), f"{label}: no command `{word}` in `finpulse {' '.join(path)}`"
            cmd = cmd.commands[word]
        assert not hasattr(cmd, "commands"), f"{label}: {path} is a command group, not a command"


def test_finpulse_dashboard_execs_streamlit_with_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor runs `finpulse dashboard`, which becomes the Streamlit server of the same settings."""
    from typer.testing import CliRunner

    from dashboard.service import streamlit_command
    from finpulse.cli import app

    for label, svc in _part_services("dashboard"):
        env = environment(svc)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        execs: list[tuple[str, list[str], dict[str, str]]] = []

        def execve(path: str, argv: list[str], environ: dict[str, str], execs: list = execs) -> None:
            execs.append((path, list(argv), environ))

        monkeypatch.setattr(os, "execve", execve)
        result = CliRunner().invoke(app, command(svc)[1:])
        assert result.exit_code == 0, f"{label}: {result.output}"
        expected = streamlit_command(_settings_from(env))
        assert [(path, argv) for path, argv, _ in execs] == [(expected[0], expected)], label
        assert execs[0][2]["FINPULSE_DASHBOARD_PORT"] == env.get("FINPULSE_DASHBOARD_PORT", "8501")


# --- stackctl --------------------------------------------------------------------------------------------------
def test_finpulse_argv_normalises_the_supervisors_forms() -> None:
    py = sys.executable
    assert stackctl.finpulse_argv([py, "-m", "finpulse", "up"]) == ["finpulse", "up"]
    assert stackctl.finpulse_argv([py, "-m", "finpulse", "ingest", "run", "--config", "x"]) == [
        "finpulse", "ingest", "run", "--config", "x",
    ]  # fmt: skip
    assert stackctl.finpulse_argv(["/opt/venv/bin/finpulse", "alerts", "run"]) == ["finpulse", "alerts", "run"]
    # no translations: a part's own module or the program a part runs is not a `finpulse` command
    with pytest.raises(stackctl.CommandError, match="every part starts as `finpulse <part>`"):
        stackctl.finpulse_argv([py, "-m", "ingest", "run"])
    with pytest.raises(stackctl.CommandError):
        stackctl.finpulse_argv(["python3.11", "-m", "streamlit", "run", "/x/dashboard/app.py"])
    with pytest.raises(stackctl.CommandError):
        stackctl.finpulse_argv(["streamlit", "run", "app.py"])


def test_part_of_reads_a_container_command_behind_an_init() -> None:
    assert stackctl.part_of(["/sbin/docker-init", "--", "finpulse", "ingest", "run"]) == "ingest"
    assert stackctl.part_of(["/opt/venv/bin/python", "-m", "finpulse", "dashboard"]) == "dashboard"
    assert stackctl.part_of(["python", "-m", "finpulse", "stream", "run", "--index", "0"]) == "stream"
    with pytest.raises(stackctl.CommandError):
        stackctl.part_of(["finpulse", "train"])
    with pytest.raises(stackctl.CommandError, match="no part runs"):
        stackctl.part_of(["finpulse", "trainer"])  # a part, but of the local `finpulse up` only


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


def test_wait_and_set_up_waits_for_health_then_sets_up_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    answers = iter([False, True])

    def spec(name: str, healthy) -> ServiceSpec:
        return ServiceSpec(name=name, endpoint=name, healthy=healthy, after_start=lambda: calls.append(name))

    specs = [spec("kafka", lambda: next(answers)), spec("clickhouse", lambda: True)]
    monkeypatch.setattr(services.time, "sleep", lambda _s: calls.append("sleep"))
    said: list[str] = []
    services.wait_and_set_up(specs, timeout_s=60, echo=said.append, external_only=True)
    assert calls == ["sleep", "kafka", "clickhouse"]
    assert said == ["kafka       ready  kafka", "clickhouse  ready  clickhouse"]


def test_wait_and_set_up_refuses_local_servers_in_containers_and_times_out() -> None:
    local = ServiceSpec(name="kafka", endpoint="x", healthy=lambda: True, argv=lambda: ["java"])
    with pytest.raises(StackError, match="FINPULSE_KAFKA_BOOTSTRAP"):
        services.wait_and_set_up([local], timeout_s=1, echo=print, external_only=True)
    services.wait_and_set_up([local], timeout_s=1, echo=lambda _m: None)  # `finpulse init` beside a local `up`
    never = ServiceSpec(name="clickhouse", endpoint="x", healthy=lambda: False)
    with pytest.raises(StackError, match="clickhouse at x did not answer within 0 s"):
        services.wait_and_set_up([never], timeout_s=0, echo=print)


def test_stackctl_init_refuses_local_servers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path))  # no FINPULSE_KAFKA_BOOTSTRAP: a local broker
    assert stackctl.main(["init"]) == 1
    assert "kafka is not external here" in capsys.readouterr().err
    assert stackctl.main([]) == 2


@pytest.mark.parametrize("profile", PROFILES)
def test_container_health_checks_name_their_part(profile: str) -> None:
    """The image's default reads the part from PID 1's command line, which an exec (the dashboard) replaces."""
    for name, svc in Compose.for_profile(profile).services.items():
        if is_finpulse(svc) and name != "finpulse-init":
            part = stackctl.part_of(command(svc))
            assert svc["healthcheck"]["test"] == ["CMD", "python", "/opt/finpulse/stackctl.py", "health", part], name


def test_readme_lists_the_parts_table_and_its_start_commands() -> None:
    from tests.unit.docker.compose import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| (server|setup|process) \| (.*) \|$", readme, flags=re.MULTILINE)
    assert [(name, kind) for name, kind, _ in rows] == [(p.name, p.kind) for p in parts.PARTS]
    settings = load_settings()
    for name, kind, started in rows:
        if kind == "process":
            argv = stackctl.part_command(name, settings)
            assert started.startswith(f"`{' '.join(argv)}`"), f"README: {name} starts as {' '.join(argv)}"
