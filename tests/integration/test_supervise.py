"""What the demo, a benchmark or a test starts does not outlive it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atalaia.supervise import WorkerProcess, settings_env
from config.settings import Settings
from streams.stopping import STOP_OVERRAN_EXIT

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 60.0
STARTER = """
import asyncio, sys, time
from pathlib import Path
from atalaia.broker import EmbeddedBroker
from atalaia.supervise import WorkerProcess
from config.settings import load_settings
from streams.admin import ensure_topics
broker = EmbeddedBroker().start()
settings = load_settings().model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
asyncio.run(ensure_topics(settings))
WorkerProcess(settings, Path(sys.argv[1])).start()
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    """Ended (a zombie no one reaps counts: it runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_killed_starter_leaves_neither_its_broker_nor_its_worker_running(
    engine_settings: Settings, tmp_path: Path
) -> None:
    """kill -9 of a process that started a broker and a worker, as the demo does: the broker
    ends with it, the worker stops cleanly within seconds."""
    log = tmp_path / "worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATALAIA_")}
    env.update(settings_env(engine_settings))
    children: list[int] = []
    with subprocess.Popen([sys.executable, "-c", STARTER, str(log)], env=env) as starter:
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while "[^Worker]: Ready" not in (log.read_text() if log.exists() else ""):
                assert time.monotonic() < deadline, "the worker did not get ready"
                time.sleep(0.2)
            children = _children(starter.pid)
            assert len(children) == 2  # the broker and the worker
            starter.kill()
            starter.wait()
            deadline = time.monotonic() + 30
            while not all(map(_gone, children)) and time.monotonic() < deadline:
                time.sleep(0.2)
            left = [pid for pid in children if not _gone(pid)]
            assert left == [], log.read_text()[-6000:]  # the worker's stop, if it is left
        finally:
            starter.kill()
            for pid in children:
                if not _gone(pid):
                    os.kill(pid, 9)
    text = log.read_text()
    assert "the process that started this one is gone: stopping" in text
    assert "Traceback" not in text


def test_a_worker_whose_stop_outlasts_its_grace_period_exits_1_saying_where_it_was(
    engine_settings: Settings, tmp_path: Path
) -> None:
    """A grace shorter than any stop: the deadline armed by SIGTERM ends the worker."""
    settings = engine_settings.model_copy(update={"stop_grace_s": 0.001})
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "[^Worker]: Ready" not in worker.log_file.read_text():
            assert time.monotonic() < deadline, "the worker did not get ready"
            time.sleep(0.2)
    except BaseException:
        worker.kill()
        raise
    assert worker.stop(timeout_s=30) == STOP_OVERRAN_EXIT
    text = worker.log_file.read_text()
    assert "did not finish stopping within 0.001 s" in text
    assert "thread MainThread:" in text
    assert "Traceback" not in text


SCRATCH_OWNER = """
import sys, time
from atalaia.scratch import scratch_directory
with scratch_directory("atalaia-test-", grace_s=float(sys.argv[1])) as tmp:
    (tmp / "store").mkdir()
    (tmp / "store" / "data").write_bytes(b"x" * 1000)
    print(tmp, flush=True)
    if sys.argv[2] == "wait":
        time.sleep(600)
"""


def _scratch_owner(grace_s: float, then: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRATCH_OWNER, str(grace_s), then],
        stdout=subprocess.PIPE,
        text=True,
    )


def _reapers_of(directory: str) -> list[int]:
    """The processes naming ``directory`` on their command line. A process just started can
    show an empty one while the kernel still sets up its exec: look again for a while."""
    deadline = time.monotonic() + 5
    while not (found := _naming(directory)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _naming(directory: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if directory.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue  # ended meanwhile
    return found


def test_a_killed_owner_s_scratch_directory_is_removed_after_the_grace() -> None:
    with _scratch_owner(1.0, "wait") as owner:
        try:
            assert owner.stdout is not None
            directory = Path(owner.stdout.readline().strip())
            assert (directory / "store" / "data").exists()
            reapers = _reapers_of(str(directory))
            assert len(reapers) == 1, (reapers, _children(owner.pid))
            owner.kill()
            owner.wait()
            time.sleep(0.3)
            assert directory.exists()  # its children get the grace to stop first
            deadline = time.monotonic() + 15
            while directory.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not directory.exists()
            deadline = time.monotonic() + 5
            while not all(map(_gone, reapers)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert all(map(_gone, reapers))
        finally:
            owner.kill()  # a failed assertion must not wait out the owner's sleep


def test_a_normal_end_removes_the_directory_and_its_reaper() -> None:
    with _scratch_owner(60.0, "end") as owner:
        assert owner.stdout is not None
        directory = Path(owner.stdout.readline().strip())
        assert owner.wait(timeout=30) == 0
    assert not directory.exists()
    assert _naming(str(directory)) == []
