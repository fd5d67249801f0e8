"""docker/compose.yaml, its env files, the Dockerfile and the ClickHouse users file, checked without a Docker engine."""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from finpulse.settings import ENV_PREFIX, Settings, load_settings
from tests.unit.docker.compose import (
    COMPOSE_FILE,
    DOCKER,
    DOCKERFILE,
    ENV_FILES,
    REPO,
    Compose,
    dockerfile_stages,
    effective,
    environment,
    is_finpulse,
    load_stackctl,
    read_env_file,
    stage_chain,
    variables,
)

PROFILES = sorted(ENV_FILES)
SETTING_ENV = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
KAFKA_IMAGE = "apache/kafka:"
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:"
# The official images' own variables (apache/kafka turns every KAFKA_* into a server property).
CLICKHOUSE_IMAGE_ENV = {
    "CLICKHOUSE_SKIP_USER_SETUP",
    "CLICKHOUSE_DB",
    "CLICKHOUSE_USER",
    "CLICKHOUSE_PASSWORD",
    "CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT",
    "CLICKHOUSE_ALWAYS_RUN_INITDB_SCRIPTS",
}
PINNED_TAG = re.compile(r"^[^:@\s]+(:[\w][\w.-]*)?(@sha256:[0-9a-f]{64})?$")
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


@pytest.fixture(params=PROFILES)
def compose(request: pytest.FixtureRequest) -> Compose:
    return Compose.for_profile(request.param)


def _kafka_brokers(compose: Compose) -> dict[str, dict]:
    return {n: s for n, s in compose.services.items() if str(s.get("image", "")).startswith(KAFKA_IMAGE)}


def _stream_workers(compose: Compose) -> dict[str, dict]:
    stream = ["finpulse", "stream", "run"]
    return {n: s for n, s in compose.services.items() if s.get("command", [None])[:3] == stream}


def _spec_env(service: str) -> set[str]:
    """Extra variables the supervisor itself gives a part (ServiceSpec.env): allowed for that part's containers."""
    stackctl = load_stackctl()
    for part, entry in stackctl.PARTS.items():
        if service in entry.containers:
            return set(stackctl.service_spec(part, load_settings()).env)
    return set()


def _settings_from(env: dict[str, str]) -> Settings:
    fields = {k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    return load_settings(**fields)


# --- the file itself ---------------------------------------------------------------------------------------------
def test_compose_parses_and_declares_services() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert set(raw) - {"name", "services", "volumes", "networks", "secrets", "configs"} <= {
        k for k in raw if k.startswith("x-")
    }
    for required in ("clickhouse", "finpulse-init", "ingest", "alerts", "dashboard", "kafka", "kafka-1"):
        assert required in raw["services"], required


def test_every_interpolated_variable_is_a_setting_and_required_ones_are_in_every_env_file() -> None:
    used = variables(COMPOSE_FILE.read_text(encoding="utf-8"))
    for name, op in used:
        assert name in SETTING_ENV, f"compose interpolates {name}, which is not a FinPulse setting"
        if op is None or op.endswith("?"):
            for profile, path in ENV_FILES.items():
                assert name in read_env_file(path), f"{path.name} ({profile}) must set {name}"


def test_env_files_set_only_settings_and_their_profile() -> None:
    for profile, path in ENV_FILES.items():
        env = read_env_file(path)
        assert env.pop("COMPOSE_PROFILES") == profile
        unknown = set(env) - SETTING_ENV
        assert not unknown, f"{path.name}: not FinPulse settings: {sorted(unknown)}"
        _settings_from(env)  # valid values


# --- environment: FINPULSE_* only, and valid -------------------------------------------------------------------
def test_service_environment_names(compose: Compose) -> None:
    for name, svc in compose.services.items():
        env = environment(svc)
        image = str(svc.get("image", ""))
        if is_finpulse(svc):
            bad = set(env) - SETTING_ENV - _spec_env(name)
            assert not bad, f"{name}: not FinPulse settings (Settings.model_fields): {sorted(bad)}"
        elif image.startswith(KAFKA_IMAGE):
            bad = {k for k in env if not (k.startswith("KAFKA_") or k == "CLUSTER_ID")}
            assert not bad, f"{name}: not apache/kafka variables: {sorted(bad)}"
        elif image.startswith(CLICKHOUSE_IMAGE):
            bad = set(env) - CLICKHOUSE_IMAGE_ENV - SETTING_ENV
            assert not bad, f"{name}: not clickhouse-server variables: {sorted(bad)}"
        else:
            pytest.fail(f"{name}: image {image!r} is neither FinPulse's nor an official Kafka/ClickHouse image")


def test_finpulse_environment_builds_valid_settings(compose: Compose) -> None:
    for name, svc in compose.services.items():
        if is_finpulse(svc):
            settings = _settings_from(environment(svc))
            assert not settings.kafka_is_local, f"{name}: FINPULSE_KAFKA_BOOTSTRAP must name the compose brokers"
            assert not settings.clickhouse_is_local, f"{name}: FINPULSE_CLICKHOUSE_URL must name the server"


def test_clickhouse_url_matches_user_password_and_database(compose: Compose) -> None:
    for name, svc in compose.services.items():
        if is_finpulse(svc):
            s = _settings_from(environment(svc))
            url = s.clickhouse_url or ""
            m = re.fullmatch(r"http://(?P<user>[^:]+):(?P<pw>[^@]+)@clickhouse:8123/(?P<db>\w+)", url)
            assert m, f"{name}: FINPULSE_CLICKHOUSE_URL {s.clickhouse_url!r}"
            assert (m["user"], m["pw"], m["db"]) == (s.clickhouse_user, s.clickhouse_password, s.clickhouse_database)


# --- images, builds, volumes -------------------------------------------------------------------------------------
def test_images_are_pinned(compose: Compose) -> None:
    for name, svc in compose.all_services.items():
        image = svc.get("image")
        assert image, f"{name}: no image"
        assert PINNED_TAG.match(image) and (":" in image.split("/")[-1] or "@sha256:" in image), f"{name}: {image}"
        tag = image.split("@")[0].rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"
        if is_finpulse(svc):
            assert tag == VERSION, f"{name}: built images are tagged with the project version {VERSION}"


def test_builds_point_at_existing_dockerfile_stages(compose: Compose) -> None:
    stages = dockerfile_stages()
    images: dict[str, str] = {}
    for name, svc in compose.all_services.items():
        if not is_finpulse(svc):
            continue
        build = svc["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context.is_dir(), f"{name}: build context {context} missing"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, f"{name}: dockerfile"
        assert build["target"] in stages, f"{name}: target {build['target']} is no stage of {DOCKERFILE.name}"
        # one image name per target, so compose never tags two different builds alike
        assert images.setdefault(svc["image"], build["target"]) == build["target"], f"{name}: {svc['image']}"


def test_named_volumes_declared_and_bind_mounts_exist(compose: Compose) -> None:
    declared = set(compose.raw.get("volumes") or {})
    used: set[str] = set()
    for name, svc in compose.all_services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (DOCKER / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared under volumes:"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {sorted(declared - used)}"


def test_model_registry_volume_is_mounted_at_model_dir(compose: Compose) -> None:
    for name, svc in _stream_workers(compose).items():
        model_dir = environment(svc)["FINPULSE_MODEL_DIR"]
        assert any(v.split(":")[1] == model_dir for v in svc["volumes"]), f"{name}: registry not mounted"


# --- Dockerfile -------------------------------------------------------------------------------------------------
def test_dockerfile_bases_are_pinned() -> None:
    stages = dockerfile_stages()
    seen: set[str] = set()
    for name, stage in stages.items():
        if stage.base not in seen:
            assert PINNED_TAG.match(stage.base), stage.base
            tag = stage.base.split("@")[0].rsplit(":", 1)[-1] if ":" in stage.base else ""
            assert re.fullmatch(r"\d+\.\d+\.\d+[\w.-]*", tag) or "@sha256:" in stage.base, (
                f"stage {name}: base {stage.base} needs an exact version tag or a digest"
            )
        seen.add(name)


def test_dockerfile_copies_only_what_exists_and_installs_with_constraints() -> None:
    stages = dockerfile_stages()
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for stage in stages.values():
        for keyword, rest in stage.instructions:
            if keyword == "COPY" and "--from=" not in rest:
                sources = [p for p in rest.split() if not p.startswith("--")][:-1]
                for source in sources:
                    assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                    if source != ".":
                        assert f"!{source.rstrip('/')}" in ignore, f"{source} is excluded by Dockerfile.dockerignore"
            if keyword == "RUN" and "pip install" in rest:
                for install in rest.split("pip install")[1:]:
                    assert "-c constraints.txt" in install, f"pip install without constraints: {install[:80]}"


def test_runtime_images_are_non_root_with_health_checks(compose: Compose) -> None:
    stages = dockerfile_stages()
    for name, svc in compose.all_services.items():
        if not is_finpulse(svc):
            continue
        target = svc["build"]["target"]
        user = effective(stages, target, "USER")
        assert user and user.split(":")[0] not in ("root", "0"), f"{name}: target {target} runs as {user!r}"
        health = effective(stages, target, "HEALTHCHECK") or ""
        compose_health = svc.get("healthcheck", {})
        if compose_health.get("disable"):
            assert svc.get("restart") == "no", f"{name}: only one-shot services may disable the health check"
            continue
        assert "CMD" in health or compose_health.get("test"), f"{name}: no health check"


def test_every_dockerfile_runtime_target_has_user_and_healthcheck() -> None:
    stages = dockerfile_stages()
    for target in ("cpu", "gpu", "gpu-model"):
        assert target in stages
        assert effective(stages, target, "USER") == "finpulse"
        assert "stackctl.py" in (effective(stages, target, "HEALTHCHECK") or "")
        chain = [s.name for s in stage_chain(stages, target)]
        assert "base" in chain, chain
    base_env = " ".join(rest for kw, rest in stages["base"].instructions if kw == "ENV")
    for name in re.findall(r"\b(FINPULSE_\w+)=", base_env):
        assert name in SETTING_ENV, f"Dockerfile ENV {name} is not a setting"


def test_non_finpulse_servers_have_health_checks(compose: Compose) -> None:
    for name, svc in compose.services.items():
        if not is_finpulse(svc):
            assert svc.get("healthcheck", {}).get("test"), f"{name}: no health check"


# --- Kafka KRaft cluster -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("profile", "brokers"), [("dev", 1), ("full", 3)])
def test_kafka_kraft_quorum(profile: str, brokers: int) -> None:
    compose = Compose.for_profile(profile)
    nodes = _kafka_brokers(compose)
    assert len(nodes) == brokers, f"{profile}: {sorted(nodes)}"
    envs = {name: environment(svc) for name, svc in nodes.items()}
    ids = {name: env["KAFKA_NODE_ID"] for name, env in envs.items()}
    assert len(set(ids.values())) == brokers, "node ids must be unique"
    voters = {f"{ids[name]}@{name}:9093" for name in nodes}
    for name, env in envs.items():
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters, name
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller", name
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092", name
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", f"{name}: topics are created by finpulse-init"
        assert env["KAFKA_LOG_DIRS"] in {v.split(":")[1] for v in nodes[name]["volumes"]}, f"{name}: log dir volume"
        for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
            assert int(env[key]) <= brokers, f"{name}: {key}"
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) <= max(1, brokers - 1), name
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1, "one CLUSTER_ID per cluster"

    for name, svc in compose.services.items():
        if is_finpulse(svc):
            settings = _settings_from(environment(svc))
            assert set(settings.kafka_servers.split(",")) == {f"{n}:9092" for n in nodes}, name
            assert settings.kafka_replication_factor == brokers, f"{name}: replication factor in {profile}"


# --- GPU stream workers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("profile", "workers"), [("dev", 1), ("full", 2)])
def test_stream_workers_reserve_one_distinct_gpu_each(profile: str, workers: int) -> None:
    compose = Compose.for_profile(profile)
    stream = _stream_workers(compose)
    assert len(stream) == workers, sorted(stream)
    gpus = []
    for name, svc in stream.items():
        assert svc["build"]["target"] == "gpu", name
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
        assert len(device["device_ids"]) == 1 and "count" not in device, f"{name}: pin one GPU by id"
        gpus.append(device["device_ids"][0])
        settings = _settings_from(environment(svc))
        assert settings.model_device == "cuda", name
        assert workers <= settings.partitions_raw, f"more stream workers than {settings.topic_raw} partitions"
    assert len(set(gpus)) == len(gpus), f"two workers on one GPU: {gpus}"


# --- ClickHouse users ------------------------------------------------------------------------------------------
def test_clickhouse_users_file_has_read_only_analyst(compose: Compose) -> None:
    server = compose.services["clickhouse"]
    mounts = {v.split(":")[1]: DOCKER / v.split(":")[0] for v in server["volumes"] if v.startswith(".")}
    users_file = mounts["/etc/clickhouse-server/users.d/finpulse.xml"]
    root = ET.parse(users_file).getroot()
    assert root.tag == "clickhouse"
    settings = _settings_from(environment(compose.services["ingest"]))

    analyst = root.find(f"users/{settings.clickhouse_analyst_user}")
    assert analyst is not None, f"no user {settings.clickhouse_analyst_user} (FINPULSE_CLICKHOUSE_ANALYST_USER)"
    profile = root.find(f"profiles/{analyst.findtext('profile')}")
    assert profile is not None and profile.findtext("readonly") == "1", "analyst profile must be readonly = 1"
    databases = [d.text for d in analyst.findall("allow_databases/database")]
    assert settings.clickhouse_database in databases

    service_user = root.find(f"users/{settings.clickhouse_user}")
    assert service_user is not None, f"no user {settings.clickhouse_user} (FINPULSE_CLICKHOUSE_USER)"
    service_profile = root.find(f"profiles/{service_user.findtext('profile')}")
    assert service_profile is None or service_profile.findtext("readonly") in (None, "0")

    server_env = environment(server)
    for user in (analyst, service_user):
        password = user.find("password")
        assert password is not None and password.get("from_env"), f"{user.tag}: password must come from the env"
        assert password.get("from_env") in server_env, f"clickhouse service lacks {password.get('from_env')}"
    # the passwords the server gets are the ones the services connect with
    assert server_env["FINPULSE_CLICKHOUSE_PASSWORD"] == settings.clickhouse_password
    assert server_env["FINPULSE_CLICKHOUSE_ANALYST_PASSWORD"] == settings.clickhouse_analyst_password


# --- start order --------------------------------------------------------------------------------------------------
def test_finpulse_services_start_after_init_and_init_after_clickhouse(compose: Compose) -> None:
    init = compose.services["finpulse-init"]
    assert init["command"] == ["python", "/opt/finpulse/stackctl.py", "init"]
    assert init["restart"] == "no"
    assert init["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    for name, svc in compose.services.items():
        if is_finpulse(svc) and name != "finpulse-init":
            assert svc["depends_on"]["finpulse-init"]["condition"] == "service_completed_successfully", name
            assert svc.get("restart") == "unless-stopped", name
            # a dependency on a profile-bound service would break the other profile
            for dep in svc["depends_on"]:
                assert not compose.all_services[dep].get("profiles"), f"{name} depends on profile-bound {dep}"


def test_readme_documents_the_deployment() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Production deployment (docker/)", 1)
    assert len(section) == 2, "README needs a '## Production deployment (docker/)' section"
    text = section[1].split("\n## ", 1)[0]
    for needle in ("FINPULSE_KAFKA_BOOTSTRAP", "FINPULSE_CLICKHOUSE_URL", "dev.env", "full.env", "finpulse-init"):
        assert needle in text, needle
    assert Path(DOCKER / "compose.yaml").name in text
