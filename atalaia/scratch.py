"""Scratch directories that go away even when their owner is killed.

A demo or evaluation keeps its broker log, RocksDB stores and reports in a temporary
directory, removed when it ends. kill -9 (or a second Ctrl-C) skips that cleanup, and the
directory stayed behind. Each one now has a reaper: a small process in its own session (so
the terminal's Ctrl-C does not reach it) that waits for the owner to end, gives its children
``grace_s`` to stop (they poll for the owner each second, see ``atalaia.supervise``), then
removes the directory. A normal end removes the directory itself and stops the reaper.

    python -m atalaia.scratch <owner pid> <directory> <grace seconds>
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from atalaia.supervise import wait_until_orphaned

POLL_S = 0.5
GRACE_S = 10.0
"""After the owner is gone: its worker stops within ~3 s of it, the broker at once."""
REMOVE_TRIES = 20


@contextmanager
def scratch_directory(prefix: str, grace_s: float = GRACE_S) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        reaper = subprocess.Popen(
            [sys.executable, "-m", __name__, str(os.getpid()), tmp, str(grace_s)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        try:
            yield Path(tmp)
        finally:
            reaper.terminate()
            reaper.wait()


def reap(owner: int, directory: Path, grace_s: float) -> None:
    """Remove ``directory`` once ``owner`` (this process's parent) has ended."""
    wait_until_orphaned(owner, POLL_S)
    time.sleep(grace_s)
    for _ in range(REMOVE_TRIES):  # a child still stopping may write meanwhile
        shutil.rmtree(directory, ignore_errors=True)
        if not directory.exists():
            return
        time.sleep(POLL_S)


def main(argv: list[str]) -> int:
    try:
        owner, directory, grace_s = int(argv[0]), Path(argv[1]), float(argv[2])
    except (IndexError, ValueError):
        print("usage: python -m atalaia.scratch <owner pid> <directory> <grace seconds>")
        return 2
    try:
        reap(owner, directory, grace_s)
    except KeyboardInterrupt:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
