"""``python -m realtime --workers N``: real processes sharing a port over Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from realtime.workers import free_port

from .helpers import SseReader, ws_json, ws_until
from .redis_server import RedisServer, redis_server

__all__ = ["redis_server"]


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.proc = proc
        self.base = base
        self.log = log

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def run(tmp_path: Path, *args: str) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "realtime", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Server(proc, f"http://127.0.0.1:{port}", log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


async def wait_healthy(server: Server, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert server.proc.poll() is None, server.stderr()
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(server.base + "/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise AssertionError("server did not start:\n" + server.stderr())


async def pids_seen(base: str, tries: int) -> set[int]:
    """The worker pids answering ``/healthz`` over ``tries`` fresh connections."""
    pids = set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(tries):
            async with s.get(base + "/healthz") as resp:
                pids.add((await resp.json())["pid"])
    return pids


async def wait_workers(base: str, n: int, timeout: float = 15) -> set[int]:
    """Poll until ``n`` different worker pids have answered (all are listening)."""
    seen: set[int] = set()
    async with asyncio.timeout(timeout):
        while len(seen) < n:
            with contextlib.suppress(aiohttp.ClientConnectionError):
                seen |= await pids_seen(base, 10)
    return seen


class Conn:
    """A WebSocket whose worker pid is known: /healthz, then the upgrade on one connection."""

    def __init__(self, session: aiohttp.ClientSession, ws: Any, pid: int) -> None:
        self.session = session
        self.ws = ws
        self.pid = pid


@contextlib.asynccontextmanager
async def connections(base: str, room: str) -> AsyncIterator[list[Conn]]:
    conns: list[Conn] = []
    try:
        for i in range(40):
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
            async with session.get(base + "/healthz") as resp:
                pid = (await resp.json())["pid"]
            ws = await session.ws_connect(f"{base}/rooms/{room}/ws?user=u{i}")
            conns.append(Conn(session, ws, pid))
            if i >= 7 and len({c.pid for c in conns}) == 2:
                break
        yield conns
    finally:
        for c in conns:
            await c.ws.close()
            await c.session.close()


def test_workers_need_the_redis_broker() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "realtime", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "--workers 2 needs a Redis broker" in out.stderr


def test_unreachable_redis_at_start_exits_non_zero(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with run(tmp_path, "--workers", "2", "--broker", url) as server:
        code = server.proc.wait(timeout=20)
        err = server.stderr()
    assert code == 3, err
    assert "unreachable" in err and "failed to start" in err


async def test_two_workers_serve_one_room_then_stop_on_sigterm(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with run(tmp_path, "--workers", "2", "--broker", redis_server.url) as server:
        await wait_healthy(server)
        assert len(await wait_workers(server.base, 2)) == 2
        async with connections(server.base, "w") as conns:
            pids = {c.pid for c in conns}
            assert len(pids) == 2, "every connection landed on one worker"
            for c in conns:
                await ws_until(c.ws, "presence")
            # Presence counts members on both workers, whichever answers.
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                for _ in range(6):
                    async with s.get(server.base + "/rooms") as resp:
                        rooms = (await resp.json())["rooms"]
                    row = next(r for r in rooms if r["room"] == "w")
                    assert row["members"]["ws"] == len(conns)
                sse_resp = await s.get(server.base + "/rooms/w/events?user=sse")
                sse = SseReader(sse_resp)
                await sse.until("presence")
                # One sender on each worker, interleaved.
                first = {pid: next(c for c in conns if c.pid == pid) for pid in pids}
                for i in range(5):
                    for pid, c in first.items():
                        await c.ws.send_json({"text": f"{pid}:{i}"})
                expected = 5 * len(pids)
                orders = []
                for c in conns:
                    got: list[tuple[str, str]] = []
                    while len(got) < expected:
                        data = await ws_json(c.ws, timeout=10)
                        if data["type"] == "message":
                            got.append((data["id"], data["text"]))
                    orders.append(got)
                sse_got = [(m["id"], m["text"]) for m in await sse.messages(expected, timeout=10)]
                assert all(o == orders[0] for o in orders) and sse_got == orders[0]
                assert {t for _, t in orders[0]} == {f"{p}:{i}" for p in pids for i in range(5)}
                # SIGTERM to the parent: clients are told, every process is gone.
                started = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)
                for c in conns:
                    closing = await c.ws.receive(timeout=10)
                    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                    if closing.type is aiohttp.WSMsgType.CLOSE:
                        assert closing.data == 1001
                assert await sse.ended()
                sse_resp.close()
                code = server.proc.wait(timeout=10)
                took = time.monotonic() - started
        assert code == 0, server.stderr()
        assert took < 6, f"stopping took {took:.1f}s"
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


async def test_a_crashed_worker_is_reported_and_replaced(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with run(tmp_path, "--workers", "2", "--broker", redis_server.url) as server:
        await wait_healthy(server)
        before = await wait_workers(server.base, 2)
        assert len(before) == 2
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if f"(pid {victim}) died (killed by signal 9)" in server.stderr():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(server.stderr())
        after: set[int] = set()
        while time.monotonic() < deadline and len(after - {victim}) < 2:
            with contextlib.suppress(aiohttp.ClientConnectionError):
                after |= await pids_seen(server.base, 10)
            await asyncio.sleep(0.1)
        assert len(after - before) == 1 and victim not in after
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=10) == 0
