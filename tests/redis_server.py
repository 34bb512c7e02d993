"""A real ``redis-server`` on a free loopback port, for the tests that need one."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from realtime.workers import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def raw_ping(port: int, timeout: float = 0.2) -> bool:
    """``PING`` over a plain socket: redis-py's own retries can stall for long."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def spawn_answering(
    args: Sequence[str], port: int, timeout: float
) -> subprocess.Popen[bytes] | None:
    """Start a Redis-speaking process; once it answers ``PING`` on ``port``,
    else ``None`` (and the process is gone)."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if raw_ping(port):
            return proc
        time.sleep(0.02)
    stop(proc)
    return None


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL: what a crash or a pulled plug looks like to clients."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become healthy")


class RedisServer:
    """One ``redis-server`` process; :meth:`kill` and :meth:`start` again keep the port.

    ``extra`` arguments are appended (cluster mode, ``--replicaof``…); a
    ``port`` given here is used as is, without retrying others.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        durable: bool = False,
        extra: Sequence[str] = (),
        port: int = 0,
    ) -> None:
        self.workdir = workdir
        self.durable = durable
        self.extra = list(extra)
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _args(self) -> list[str]:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--dir", str(self.workdir), "--daemonize", "no"]
        # A replica's first sync starts at once (Redis waits 5 s by default).
        args += ["--repl-diskless-sync-delay", "0"]
        if self.durable:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args + self.extra

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start on ``self.port``, or on a free port (retrying others) the first time."""
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            if not self.port or attempts > 1:
                self.port = free_port()
            self.proc = spawn_answering(self._args(), self.port, timeout)
            if self.proc is not None:
                return
        raise RuntimeError(f"redis-server did not start ({REDIS_SERVER})")

    def kill(self) -> None:
        """SIGKILL: what a crash or a pulled plug looks like to clients."""
        stop(self.proc)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """appendonly yes + appendfsync always: an acknowledged write survives a kill."""
    server = RedisServer(tmp_path, durable=True)
    server.start()
    try:
        yield server
    finally:
        server.kill()
