"""ClickHouse's official Go client (github.com/ClickHouse/clickhouse-go/v2) over its HTTP protocol against the real
local endpoint, with its compression option off and on (LZ4, and ZSTD).

The program is tests/clients/go (go.mod + go.sum pin the client). Its modules are fetched at install time
(`make clients`, which `make integration` and .ci/run run: `go mod download`), so this test builds it with
GOPROXY=off and never needs the network. Without Go it skips outside CI and fails in CI (CI set), as a missing
client must not pass unnoticed there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.endpoint import Endpoint

PROGRAM = Path(__file__).resolve().parents[2] / "clients" / "go"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        message = "needs Go >= 1.26 on PATH (tests/clients/go/go.mod) to build the clickhouse-go check"
        if IN_CI:
            pytest.fail(f"{message}; CI must provide it")
        pytest.skip(message)
    binary = tmp_path_factory.mktemp("go-client") / "clickhouse-go-check"
    # Offline and exactly what go.sum pins: the modules come from `make clients` (go mod download).
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=readonly", "GOWORK": "off", "GOTOOLCHAIN": "local"}
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=PROGRAM, env=env, capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, (
        "building tests/clients/go failed; if modules are missing, run `make clients` "
        f"(go mod download in tests/clients/go):\n{built.stderr[-3000:]}"
    )
    return binary


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_official_go_client_over_http(endpoint: Endpoint, go_client: Path, compression: str) -> None:
    table = f"go_{compression}_{uuid.uuid4().hex[:8]}"
    address = f"127.0.0.1:{endpoint.settings.clickhouse_port}"
    run = subprocess.run(
        [str(go_client), address, *endpoint.admin, table, compression],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_PROXY": "*", "no_proxy": "*"},
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-4000:]}"
    lines = run.stdout.splitlines()
    assert lines[0] == "inserted 1000"  # a batch insert: Native blocks in the request body
    assert lines[1] == f"count 1000 sum {sum(range(1000))}"
    assert lines[2] == "bound name-42 21"  # a server-side parameter {id:UInt32}
    assert lines[3] == "positional name-7"  # the client's own ? binding
    assert lines[4] == "sql 500 name-3 sql-1499"  # database/sql: prepared INSERT in a transaction, bound select
    assert lines[5] == f"streamed {sum(range(300_000))}"  # many blocks in one response
    assert lines[6] == "types low true [1 2 3] 7 2026-01-02T03:04:05.250 ab"
    assert lines[7] == "low-cardinality NULL,1,2,NULL,4,0,NULL,2,3,NULL"
    assert lines[8].startswith("error 60 ") and "UNKNOWN_TABLE" in lines[8]  # ClickHouse's exception, parsed
    assert lines[9] == "after-error 1"


def test_client_protocol_version_that_is_not_a_number_is_refused(endpoint: Endpoint) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{endpoint.url}/?client_protocol_version=x1&default_format=Native", b"SELECT 1")
    request.add_header("X-ClickHouse-User", endpoint.admin[0])
    request.add_header("X-ClickHouse-Key", endpoint.admin[1])
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(request, timeout=30)
    assert refused.value.code == 400
    assert "client_protocol_version" in refused.value.read().decode()
