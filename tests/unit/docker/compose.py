"""Reads docker/compose.yaml, its env files and the Dockerfile the way Docker Compose would, without a Docker engine."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_FILES = {"dev": DOCKER / "dev.env", "full": DOCKER / "full.env"}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def load_stackctl() -> ModuleType:
    """docker/stackctl.py (not a package: it is copied into the images as a script)."""
    name = "finpulse_docker_stackctl"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DOCKER / "stackctl.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            env[key.strip()] = value.strip()
    return env


def variables(text: str) -> list[tuple[str, str | None]]:
    """Every interpolated variable of a compose file: (name, operator)."""
    return [(m["name"], m["op"]) for m in _VAR.finditer(text)]


def interpolate(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name, op, arg = m["name"], m["op"], m["arg"] or ""
        value = env.get(name)
        if op in (":-", ":?") and not value:
            value = None
        if value is not None:
            return value
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"compose needs {name}: {arg}")
        return ""

    return _VAR.sub(sub, text)


@dataclass
class Compose:
    """The compose model after interpolation with one environment, restricted to one profile's services."""

    raw: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> Compose:
        env = dict(env or {})
        return cls(yaml.safe_load(interpolate(COMPOSE_FILE.read_text(encoding="utf-8"), env)), env)

    @classmethod
    def for_profile(cls, profile: str) -> Compose:
        return cls.load(read_env_file(ENV_FILES[profile]))

    @property
    def profiles(self) -> set[str]:
        return {p for p in self.env.get("COMPOSE_PROFILES", "").split(",") if p}

    @property
    def all_services(self) -> dict[str, dict[str, Any]]:
        return self.raw["services"]

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        """Services that `docker compose up` starts with this environment's COMPOSE_PROFILES."""
        return {
            name: svc
            for name, svc in self.all_services.items()
            if not svc.get("profiles") or set(svc["profiles"]) & self.profiles
        }


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def is_finpulse(service: dict[str, Any]) -> bool:
    """A FinPulse container: built from docker/Dockerfile."""
    return "build" in service


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    assert isinstance(cmd, list), f"command must be a list (exec form), got {cmd!r}"
    return [str(c) for c in cmd]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """Stages of a Dockerfile in order (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else f"#{len(stages)}"
            current = Stage(name=name, base=parts[0])
            stages[name] = current
        else:
            assert current is not None, f"instruction before FROM: {line}"
            current.instructions.append((keyword, rest.strip()))
    return stages


def stage_chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = []
    name: str | None = target
    while name in stages:
        stage = stages[name]
        chain.append(stage)
        name = stage.base
    return chain


def effective(stages: dict[str, Stage], target: str, keyword: str) -> str | None:
    """The last value of an instruction that a target stage has, itself or inherited."""
    for stage in stage_chain(stages, target):
        values = [rest for kw, rest in stage.instructions if kw == keyword]
        if values:
            return values[-1]
    return None
