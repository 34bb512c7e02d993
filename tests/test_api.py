"""``POST /api/disconnect``: a user's connections closed on every process, with
a code that tells the client whether to reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from realtime.workers import free_port

from .api_helpers import HEADERS, KEY, Client, api, call, make_api
from .helpers import SseReader, ws_until
from .redis_server import RedisServer, redis_server
from .test_workers import Server, wait_healthy

__all__ = ["api", "make_api", "redis_server"]


async def open_ws(client: Any, url: str) -> aiohttp.ClientWebSocketResponse:
    ws: aiohttp.ClientWebSocketResponse = await client.ws_connect(url)
    await ws_until(ws, "presence")
    return ws


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """The code and reason of the server's close frame.

    (Not ``ws.close_code``: aiohttp's client sets 1006 there when its close
    reply finds the server already gone, after it received the frame.)"""
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return int(msg.data), str(msg.extra or "")
        if msg.type is aiohttp.WSMsgType.CLOSED:
            return ws.close_code, ""


async def test_websocket_closes_with_4000_and_the_reason(api: Client) -> None:
    ana_1 = await open_ws(api, "/rooms/a/ws?user=ana")
    ana_2 = await open_ws(api, "/rooms/b/ws?user=ana")
    bo = await open_ws(api, "/rooms/a/ws?user=bo")
    out = await call(api, "POST", "/api/disconnect", json={"user": "ana", "reason": "banned"})
    assert out == {"disconnected": 2}
    assert await closed_with(ana_1) == (4000, "banned")
    assert await closed_with(ana_2) == (4000, "banned")
    leave = await ws_until(bo, "presence")  # bo stays, and sees ana leave
    assert leave["event"] == "leave" and leave["user"] == "ana"
    await bo.close()


async def test_reconnect_true_closes_with_4001_and_a_room_limits_it(api: Client) -> None:
    in_a = await open_ws(api, "/rooms/a/ws?user=ana")
    in_b = await open_ws(api, "/rooms/b/ws?user=ana")
    body = {"user": "ana", "room": "a", "reconnect": True}
    assert await call(api, "POST", "/api/disconnect", json=body) == {"disconnected": 1}
    assert await closed_with(in_a) == (4001, "disconnected by the server")
    data = await call(api, "GET", "/api/rooms/b/presence/stats")
    assert data["connections"] == 1  # the other room's connection is untouched
    await in_b.close()


async def test_sse_gets_a_final_disconnect_event_then_the_stream_ends(api: Client) -> None:
    sse = SseReader(await api.get("/rooms/a/events?user=ana"))
    await sse.until("presence")
    body = {"user": "ana", "reason": "maintenance", "reconnect": True}
    assert await call(api, "POST", "/api/disconnect", json=body) == {"disconnected": 1}
    ev = await sse.until("disconnect")
    assert ev.event == "disconnect"
    assert ev.data == {
        "type": "disconnect",
        "code": 4001,
        "reason": "maintenance",
        "reconnect": True,
    }
    assert await sse.ended()


async def test_unknown_users_and_bad_bodies(api: Client) -> None:
    assert await call(api, "POST", "/api/disconnect", json={"user": "nobody"}) == {
        "disconnected": 0
    }
    for body, code in [
        ({}, "bad_user"),
        ({"user": ""}, "bad_user"),
        ({"user": "ana", "room": "bad room"}, "bad_room"),
        ({"user": "ana", "reason": "x" * 101}, "bad_reason"),
        ({"user": "ana", "reason": 5}, "bad_reason"),
        ({"user": "ana", "reconnect": "yes"}, "bad_message"),
        (["ana"], "bad_message"),
    ]:
        out = await call(api, "POST", "/api/disconnect", 400, json=body)
        assert out["code"] == code, body


async def test_disconnects_are_counted_by_reason(api: Client) -> None:
    ws = await open_ws(api, "/rooms/a/ws?user=ana")
    await call(api, "POST", "/api/disconnect", json={"user": "ana"})
    await closed_with(ws)
    metrics = await (await api.get("/metrics")).text()
    assert 'realtime_disconnects_total{reason="disconnect"} 1.0' in metrics


@contextlib.contextmanager
def server(tmp_path: Path, name: str, redis_url: str) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / f"{name}.log"
    args = ["--port", str(port), "--broker", redis_url, "--store", "memory", "--api-key", KEY]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "realtime", *args], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield Server(proc, f"http://127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def test_disconnect_reaches_every_process_with_redis(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with (
        server(tmp_path, "one", redis_server.url) as one,
        server(tmp_path, "two", redis_server.url) as two,
    ):
        await wait_healthy(one)
        await wait_healthy(two)
        async with aiohttp.ClientSession() as session:
            ws_one = await open_ws(session, one.base + "/rooms/a/ws?user=ana")
            ws_two = await open_ws(session, two.base + "/rooms/b/ws?user=ana")
            sse = SseReader(await session.get(two.base + "/rooms/a/events?user=ana"))
            await sse.until("presence")
            bo = await open_ws(session, two.base + "/rooms/a/ws?user=bo")
            async with session.post(
                one.base + "/api/disconnect", json={"user": "ana"}, headers=HEADERS
            ) as resp:
                assert resp.status == 200 and await resp.json() == {"disconnected": 3}
            assert await closed_with(ws_one) == (4000, "disconnected by the server")
            assert await closed_with(ws_two) == (4000, "disconnected by the server")
            assert (await sse.until("disconnect")).data["code"] == 4000
            assert await sse.ended()
            # The leaves reach presence just after the closes.
            assert await members_soon(session, two.base, "a", ["bo"]) == ["bo"]
            await bo.close()


async def members_soon(
    session: aiohttp.ClientSession, base: str, room: str, expected: list[str]
) -> list[str]:
    """The users presence lists, once they are ``expected`` (or after 5 s)."""
    users: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while users != expected:
                url = f"{base}/api/rooms/{room}/presence"
                async with session.get(url, headers=HEADERS) as resp:
                    users = [m["user"] for m in (await resp.json())["members"]]
                await asyncio.sleep(0.05)
    return users
