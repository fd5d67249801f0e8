"""Private files on a shared machine: every FinPulse process creates files 0600 and directories 0700 (umask 077,
inherited by the services the supervisor starts: Kafka, the ClickHouse endpoint, workers), and the data, run and
log directories are tightened to 0700 at start even when an older version created them with the default umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def private_umask() -> None:
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` as 0700 (parents too), or tighten it to 0700 if it exists and is ours."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)
    return path


def private_files(folder: Path) -> None:
    """Tighten the regular files directly in ``folder`` (logs, state, pid files) to 0600."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_file() and not entry.is_symlink():
            _tighten(entry, 0o600)


def _tighten(path: Path, mode: int) -> None:
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != mode:
            os.chmod(path, mode)
    except OSError:  # not ours, or gone: leave it
        pass
