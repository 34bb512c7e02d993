"""``python -m realtime`` as a user runs it: a real process, real signals."""

from __future__ import annotations

import asyncio
import select
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import pytest

from realtime.workers import free_port

from .helpers import SseReader, ws_until


async def wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                async with session.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        raise AssertionError("server did not start")


def test_help_documents_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "realtime", "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    for option in ["--host", "--port", "--history-size", "--replay", "--log-level"]:
        assert option in out.stdout


def test_bad_flag_exits_non_zero_with_message() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "realtime", "--replay", "-1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0 and "--replay" in out.stderr


async def test_sigterm_closes_clients_and_exits(tmp_path: object) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime", "--port", str(port), "--store", "memory"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base, proc)
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(base + "/rooms/r/ws?user=ana")
            await ws_until(ws, "presence")
            reader = SseReader(await session.get(base + "/rooms/r/events?user=bo"))
            await reader.until("presence")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                while (await ws.receive()).type not in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                ):
                    pass
            assert ws.close_code == 1001
            assert await reader.ended(timeout=5)
        code = await asyncio.to_thread(proc.wait, 10)
        assert code == 0
        assert time.monotonic() - started < 5
        log = proc.stderr.read().decode() if proc.stderr else ""
        assert "connect conn=" in log and "transport=ws" in log and "transport=sse" in log
        assert "disconnect conn=" in log and "duration=" in log
        ws_line = next(x for x in log.splitlines() if "disconnect" in x and "transport=ws" in x)
        assert "reason=shutdown" in ws_line and "code=1001" in ws_line, ws_line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "realtime", *args], capture_output=True, text=True, timeout=30
    )


def test_help_lists_the_subcommands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ["token --user NAME", "listen ROOM", "send ROOM TEXT", "publish ROOM TEXT"]:
        assert f"python -m realtime {command}" in out.stdout
    assert "--backlog" in out.stdout and "--request-timeout" in out.stdout


def test_a_redis_broker_without_the_redis_package_is_one_clear_line() -> None:
    # As if the optional extra were not installed: importing redis fails.
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from realtime.__main__ import main\n"
        "main(['--broker', 'redis://127.0.0.1:1/0', '--port', '0'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 3
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if "ERROR" in line]
    assert len(lines) == 1 and "needs the redis package" in lines[0], out.stderr


async def test_a_port_in_use_is_one_clear_line_and_exit_code_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = await asyncio.to_thread(run_cli, "--port", str(port), "--store", "memory")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in lines[0]
    assert "Traceback" not in out.stderr


def connected_while_stopped(proc: subprocess.Popen[bytes], port: int, n: int) -> int:
    """Stop the server (as a busy loop would), open ``n`` connections at once,
    and count those the kernel completed within half a second: the rest wait
    for a SYN retry because the listen queue is full."""
    socks = []
    proc.send_signal(signal.SIGSTOP)
    try:
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        deadline = time.monotonic() + 0.5
        pending = set(socks)
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(pending), [], 0.05)
            pending -= set(writable)
        return sum(
            1
            for s in socks
            if s not in pending and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        )
    finally:
        proc.send_signal(signal.SIGCONT)
        for s in socks:
            s.close()


@pytest.mark.parametrize(("backlog", "burst"), [(None, 600), ("64", 600)])
async def test_backlog_holds_a_burst_of_connections(backlog: str | None, burst: int) -> None:
    port = free_port()
    extra = ["--backlog", backlog] if backlog else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime", "--port", str(port), "--store", "memory", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
        connected = await asyncio.to_thread(connected_while_stopped, proc, port, burst)
        if backlog is None:  # the default, 1024, queues them all
            assert connected == burst
        else:  # the kernel holds backlog + 1, the rest wait for a retry
            assert connected <= int(backlog) + 1
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.kill()
        proc.wait()
