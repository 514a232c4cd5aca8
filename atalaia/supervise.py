"""Running ``atalaia worker`` (or ``api``...) as a child process (``up``, demo, tests,
benchmarks)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pydantic import SecretStr

from config.settings import Settings

log = logging.getLogger(__name__)

SUPERVISOR_PID_ENV = "ATALAIA_SUPERVISOR_PID"
"""Set for a child ``atalaia``: the process that started it, whose end it does not outlive."""
SUPERVISOR_POLL_S = 1.0


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as the environment variable a child ``atalaia`` reads it from."""
    return {
        f"ATALAIA_{name.upper()}": (
            value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        )
        for name, value in settings.model_dump().items()
        if value is not None
    }


def interrupt_on_sigterm() -> None:
    """Make SIGTERM do what Ctrl-C does, so ``finally`` blocks stop our child processes.

    Inside ``asyncio.run`` that cancels the main task (the handler asyncio installs for
    SIGINT) instead of raising KeyboardInterrupt wherever the signal lands. A handler that
    raises can land inside a compiled module (``make compile``), whose integer arithmetic
    checks for signals and aborts the process ("fatal: out of memory") on any error there:
    ``atalaia demo`` stopped by SIGTERM did so mid-replay."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        on_sigint = signal.getsignal(signal.SIGINT)
        if not callable(on_sigint):
            raise KeyboardInterrupt
        on_sigint(signum, frame)

    signal.signal(signal.SIGTERM, interrupt)


def wait_until_orphaned(parent: int, poll_s: float = SUPERVISOR_POLL_S) -> None:
    """Return once ``parent`` has ended (this process then has another parent). Polled: the
    kernel's parent-death signal follows the parent *thread*, not the process."""
    while os.getppid() == parent:
        time.sleep(poll_s)


def stop_with_supervisor() -> None:
    """In a child started by ``WorkerProcess``: stop cleanly (SIGTERM to itself) once the
    process that started it is gone. A demo, test or benchmark killed before its own cleanup
    ran (kill -9, a second Ctrl-C) used to leave its worker running."""
    supervisor = os.environ.get(SUPERVISOR_PID_ENV, "")
    if not supervisor.isdigit():
        return
    parent = int(supervisor)

    def watch() -> None:
        wait_until_orphaned(parent)
        log.warning("the process that started this one is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


class WorkerProcess:
    def __init__(
        self,
        settings: Settings,
        log_file: Path,
        command: str | Sequence[str] = "worker",
        module: str = "atalaia",
    ) -> None:
        """Runs ``python -m <module> <command...>`` (a benchmark may run a module of its own)."""
        self.settings = settings
        self.log_file = log_file
        self.command = command
        self.module = module
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATALAIA_")}
        env.update(settings_env(self.settings))
        env[SUPERVISOR_PID_ENV] = str(os.getpid())
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    @property
    def args(self) -> list[str]:
        return [self.command] if isinstance(self.command, str) else list(self.command)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def exit_code(self) -> int | None:
        """The code it ended with (None: still running, or never started)."""
        return self._process.poll() if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit (what a crash looks like)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM and wait for a clean shutdown; SIGKILL if it hangs."""
        if self._process is None:
            return None
        self._process.send_signal(signal.SIGTERM)
        try:
            code = self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        self._process = None
        return code
