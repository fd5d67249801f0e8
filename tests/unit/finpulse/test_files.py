"""Private files: the data, run and log dirs are 0700 and their files 0600 - created that way, and tightened when
an older install left them at the default umask; supervised services inherit umask 077."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

from finpulse.files import private_dir, private_files
from finpulse.settings import load_settings
from finpulse.stack.supervisor import ServiceSpec, Supervisor


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_private_dir_creates_0700_and_tightens_an_old_one(tmp_path: Path) -> None:
    assert _mode(private_dir(tmp_path / "a" / "b")) == 0o700
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    os.chmod(old, 0o755)
    (old / "x.log").write_text("x")
    os.chmod(old / "x.log", 0o644)
    private_dir(old)
    private_files(old)
    assert _mode(old) == 0o700 and _mode(old / "x.log") == 0o600


def test_supervisor_tightens_data_run_and_log_dirs_and_its_children_write_0600(tmp_path: Path) -> None:
    data = tmp_path / "data"
    logs = data / "run" / "logs"
    logs.mkdir(parents=True)
    for folder in (data, data / "run", logs):
        os.chmod(folder, 0o755)
    (logs / "old.log").write_text("old")
    os.chmod(logs / "old.log", 0o644)
    settings = load_settings(data_dir=data)
    made = data / "made-by-child"
    spec = ServiceSpec(
        name="toucher",
        endpoint="-",
        healthy=lambda: True,
        argv=lambda: [sys.executable, "-c", f"open({str(made)!r}, 'w').write('x')"],
    )
    sup = Supervisor(settings, [spec])
    sup.acquire()
    try:
        assert [_mode(p) for p in (data, data / "run", logs)] == [0o700] * 3
        assert _mode(logs / "old.log") == 0o600 and _mode(data / "run" / "supervisor.lock") == 0o600
        sup._spawn(sup.children[0])
        sup.children[0].proc.wait(30)
        deadline = time.monotonic() + 5
        while not made.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _mode(made) == 0o600 and _mode(logs / "toucher.log") == 0o600
    finally:
        if sup.children[0].log_file:
            sup.children[0].log_file.close()
        if sup._lock_fd is not None:
            os.close(sup._lock_fd)
