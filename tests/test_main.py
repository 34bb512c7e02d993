"""``python -m realtime`` as a user runs it: a real process, real signals."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import aiohttp

from .helpers import SseReader, free_port, ws_until


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
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
