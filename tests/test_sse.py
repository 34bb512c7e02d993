"""The SSE transport over real sockets: stream, resume, cross-transport, shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

from .conftest import MakeClient
from .helpers import SseReader, post, ws_messages, ws_until
from .redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # a fixture


async def open_stream(client: Any, url: str, **headers: str) -> SseReader:
    resp = await client.get(url, headers=headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return SseReader(resp)


async def test_stream_delivers_messages_with_ids_and_types(client: Any) -> None:
    reader = await open_stream(client, "/rooms/lobby/events?user=bo")
    presence = await reader.until("presence")
    assert presence.event == "presence" and presence.id is None
    assert presence.data["members"] == [{"user": "bo", "transport": "sse"}]
    sent = await post(client, "lobby", "hello", user="ana")
    ev = await reader.until("message")
    assert ev.event == "message" and ev.id == sent["id"] == "1"
    assert ev.data == sent
    assert reader.retry == 1000


async def test_sse_alias_is_lobby(client: Any) -> None:
    reader = await open_stream(client, "/sse")
    await post(client, "lobby", "x")
    assert (await reader.until("message")).data["text"] == "x"


async def test_cross_transport_both_ways_same_ids_same_order(client: Any) -> None:
    reader = await open_stream(client, "/rooms/x/events?user=sse-user")
    async with client.ws_connect("/rooms/x/ws?user=ws-user") as ws:
        await ws_until(ws, "presence")
        for i in range(5):
            await ws.send_json({"text": f"from ws {i}", "client_id": f"w{i}"})
            await post(client, "x", f"from post {i}", user="sse-user")
        via_ws = await ws_messages(ws, 10)
        via_sse = await reader.messages(10)
    assert via_ws == via_sse
    assert [m["id"] for m in via_ws] == [str(i) for i in range(1, 11)]
    assert {m["user"] for m in via_ws} == {"ws-user", "sse-user"}


async def test_last_event_id_resumes_without_gap_or_duplicate(client: Any) -> None:
    for i in range(8):
        await post(client, "r", f"m{i}")
    reader = await open_stream(client, "/rooms/r/events?since=1", **{"Last-Event-ID": "5"})
    got = await reader.messages(3)
    assert [m["id"] for m in got] == ["6", "7", "8"]
    await post(client, "r", "live")
    assert (await reader.until("message")).id == "9"


async def test_since_query_works_when_no_header(client: Any) -> None:
    for i in range(4):
        await post(client, "r", f"m{i}")
    reader = await open_stream(client, "/rooms/r/events?since=2")
    assert [m["id"] for m in await reader.messages(2)] == ["3", "4"]


async def test_resume_while_publishing(client: Any) -> None:
    for i in range(5):
        await post(client, "r", f"m{i}")

    async def publish() -> None:
        for i in range(5, 150):
            await post(client, "r", f"m{i}")

    task = asyncio.create_task(publish())
    await asyncio.sleep(0.02)
    reader = await open_stream(client, "/rooms/r/events", **{"Last-Event-ID": "3"})
    await task
    got = await reader.messages(147, timeout=10)
    assert [int(m["id"]) for m in got] == list(range(4, 151))


async def test_unknown_or_evicted_id_is_announced_as_gap(make_client: MakeClient) -> None:
    client = await make_client(history_size=3, replay=3)
    for i in range(6):
        await post(client, "r", f"m{i}")
    reader = await open_stream(client, "/rooms/r/events", **{"Last-Event-ID": "1"})
    gap = await reader.next()
    assert gap.event == "gap" and gap.data["first_id"] == "4"
    assert [m["id"] for m in await reader.messages(3)] == ["4", "5", "6"]
    reader = await open_stream(client, "/rooms/r/events", **{"Last-Event-ID": "99"})
    assert (await reader.next()).event == "gap"


async def test_bad_input_is_400_json(client: Any) -> None:
    for url, headers, code in [
        ("/rooms/a%20b/events", {}, "bad_room"),
        ("/rooms/r/events", {"Last-Event-ID": "banana"}, "bad_id"),
        ("/rooms/r/events?user=" + "u" * 33, {}, "bad_user"),
    ]:
        resp = await client.get(url, headers=headers)
        assert resp.status == 400
        assert (await resp.json())["code"] == code


async def test_disconnect_removes_member(client: Any) -> None:
    resp = await client.get("/rooms/gone/events?user=x")
    await SseReader(resp).until("presence")
    rooms = (await (await client.get("/rooms")).json())["rooms"]
    assert {"room": "gone", "members": {"ws": 0, "sse": 1}, "total": 1} in rooms
    resp.close()
    async with asyncio.timeout(5):
        while True:
            rooms = (await (await client.get("/rooms")).json())["rooms"]
            if all(r["total"] == 0 for r in rooms if r["room"] == "gone"):
                break
            await asyncio.sleep(0.02)


async def test_server_shutdown_ends_stream(make_client: MakeClient) -> None:
    client = await make_client()
    reader = await open_stream(client, "/rooms/r/events")
    await reader.until("presence")
    await client.server.close()
    assert await reader.ended(timeout=5)


async def test_a_new_stream_while_the_broker_is_down_gets_503(
    redis_server: RedisServer, make_client: MakeClient
) -> None:
    client = await make_client(broker=redis_server.url)
    assert (await client.get("/rooms/r/events")).status == 200
    redis_server.kill()
    async with asyncio.timeout(10):
        while (await client.get("/healthz")).status != 503:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    resp = await client.get("/rooms/r/events")
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["code"] == "unavailable"
