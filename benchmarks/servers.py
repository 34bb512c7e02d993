"""The server under test: ``realtime``, a reference peer, or one already running.

A started server listens on a free loopback port, logs to a file, gets
SIGTERM from the kernel if the benchmark dies (``PR_SET_PDEATHSIG``), and is
stopped on the way out of :func:`started`. The peers of ``--peer`` serve the
same plan for comparison: ``bun`` runs ``server.ts`` of a Bun + Hono
directory (after its ``npm install``), ``python`` a script run as
``python SCRIPT PORT [--uvloop]``, such as the naive aiohttp peer that
broadcasts with ``for ws in clients: await ws.send_str(…)``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from benchmarks.dialect import PEER, REALTIME, Dialect
from realtime.workers import free_port

START_TIMEOUT = 20.0
PEERS = ("bun", "python")


@dataclass
class Target:
    """Where the load goes: ``server_pid`` is None when its CPU cannot be read."""

    name: str  # "realtime", or the peer's kind
    base_url: str
    server_pid: int | None
    dialect: Dialect


def check_url(url: str, allow_remote: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SystemExit(f"--url must look like http://127.0.0.1:8080, not {url!r}")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise SystemExit(f"refusing non-loopback host {host!r}; pass --allow-remote to insist")
    return url.rstrip("/")


def realtime_command(args: argparse.Namespace, port: int, tmp: str) -> list[str]:
    cmd = [sys.executable, "-m", "realtime", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--replay", "0", "--log-level", "WARNING"]
    store = f"sqlite:{tmp}/bench.db" if args.store == "sqlite-temp" else args.store
    cmd += ["--store", store]
    # Limits meant for the public must not throttle the benchmark's own clients.
    cmd += ["--rate-limit", "1000000/s", "--rate-burst", "1000000"]
    cmd += ["--max-connections-per-ip", "1000000"]
    if args.broker:
        cmd += ["--broker", args.broker]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    return cmd + list(args.server_arg)


def peer_command(kind: str, path: str, port: int) -> tuple[list[str], str]:
    """The peer's command line and the directory to run it in."""
    if kind == "bun":
        bun = os.path.join(path, "node_modules", ".bin", "bun")
        if not os.path.exists(bun):
            raise SystemExit(f"--peer bun: no {bun}; run npm install in a copy of the peer first")
        # The binary itself, not a wrapper: its /proc/PID/stat is the server's CPU.
        return [os.path.realpath(bun), "run", "server.ts", str(port)], path
    cmd = [sys.executable, os.path.abspath(path), str(port)]
    if importlib.util.find_spec("uvloop") is not None:
        cmd.append("--uvloop")  # as realtime runs on uvloop when installed
    return cmd, os.path.dirname(os.path.abspath(path))


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no healthy server at {url} after {timeout:.0f}s")


def _die_with_parent() -> None:
    """In the server's child: get SIGTERM if the benchmark itself is killed."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def started(kind: str, args: argparse.Namespace, say: Callable[[str], None]) -> Iterator[Target]:
    """``realtime`` or the peer ``kind`` on a free loopback port; stopped on the way out."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        if kind == "realtime":
            cmd, cwd, dialect = realtime_command(args, port, tmp), None, REALTIME
        else:
            (cmd, cwd), dialect = peer_command(kind, args.peer_path, port), PEER
        say(f"starting {kind}: " + " ".join(cmd))
        log_path = args.server_log or os.path.join(tmp, "server.log")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
            try:
                base = f"http://127.0.0.1:{port}"
                wait_healthy(base + dialect.health_path, proc, START_TIMEOUT)
                yield Target(kind, base, proc.pid, dialect)
            finally:
                stop_process(proc)
                summarize_log(log_path, say)


def summarize_log(path: str, say: Callable[[str], None]) -> None:
    """The server logs at WARNING: say how much it said, and its last lines."""
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    if lines:
        tail = "\n    ".join(line[:200] for line in lines[-3:])
        say(f"server logged {len(lines)} lines ({path}); last:\n    {tail}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
