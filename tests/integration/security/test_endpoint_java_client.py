"""ClickHouse's official Java client (Maven Central, default settings) against the real local endpoint.

Its defaults ask for native LZ4 block compression of every response (``compress=1``); the endpoint used to refuse
that. The jars are fetched once with Maven into the artifact cache (as the Kafka jars are, finpulse/stack/kafka.py)
and a small program (java/ClickHouseClientCheck.java) is compiled with javac at test time.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.integration.endpoint import Endpoint

JDBC_VERSION = "0.10.0"  # com.clickhouse:clickhouse-jdbc (jdbc-v2 over client-v2); 0.11.x is not fully served
PROGRAM = Path(__file__).parent / "java" / "ClickHouseClientCheck.java"
POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>finpulse.test</groupId><artifactId>clickhouse-java-client</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>com.clickhouse</groupId><artifactId>clickhouse-jdbc</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId><version>2.0.17</version></dependency>
  </dependencies>
</project>
"""

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("java", "javac", "mvn")), reason="needs a JDK (java, javac) and Maven"
)


def _jars(cache: Path) -> Path:
    jars = cache / f"clickhouse-jdbc-{JDBC_VERSION}"
    if (jars / ".complete").is_file():
        return jars
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(POM.format(version=JDBC_VERSION), encoding="utf-8")
        staging = Path(tmp) / "libs"
        cmd = ["mvn", "-B", "-q", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
        proc = subprocess.run([*cmd, "-DincludeScope=runtime"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"Maven could not fetch clickhouse-jdbc:\n{(proc.stdout + proc.stderr)[-3000:]}"
        assert any(staging.glob("jdbc-v2-*.jar")), sorted(p.name for p in staging.iterdir())
        (staging / ".complete").write_text(JDBC_VERSION, encoding="utf-8")
        if jars.exists():
            shutil.rmtree(jars)
        staging.rename(jars)
    return jars


def test_official_java_client_with_default_settings(endpoint: Endpoint, tmp_path: Path) -> None:
    jars = _jars(endpoint.settings.artifact_cache_dir)
    classpath = f"{jars}/*"
    compiled = subprocess.run(
        ["javac", "-d", str(tmp_path), "-cp", classpath, str(PROGRAM)], capture_output=True, text=True, timeout=300
    )
    assert compiled.returncode == 0, compiled.stderr
    table = f"java_{uuid.uuid4().hex[:8]}"
    url = f"jdbc:clickhouse://127.0.0.1:{endpoint.settings.clickhouse_port}/default"
    run = subprocess.run(
        ["java", "-cp", f"{classpath}:{tmp_path}", "ClickHouseClientCheck", url, *endpoint.admin, table],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-4000:]}"
    lines = run.stdout.splitlines()
    assert lines[0] == "inserted 1000"
    assert lines[1] == f"count 1000 sum {sum(range(1000))}"
    assert lines[2] == "row name-42 21.0"  # a prepared statement with a bound parameter
    assert lines[3] == f"streamed {sum(range(300_000))}"  # many compressed blocks
    assert lines[4].startswith("error Code: 60.") and "UNKNOWN_TABLE" in lines[4]  # the error reaches the client
    assert lines[5] == "after-error 1"
    assert lines[6] == "compressed-insert 500"  # decompress=1 request bodies from the same client
