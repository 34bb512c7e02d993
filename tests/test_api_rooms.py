"""Reading rooms through the server API: history pages both ways, presence and
its stats (across processes with Redis), the paged room list."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from .api_helpers import Client, MakeApi, api, call, make_api, publish
from .helpers import SseReader, ws_until
from .redis_server import RedisServer, redis_server

__all__ = ["api", "make_api", "redis_server"]


async def fill(client: Client, room: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        out = await publish(client, room=room, text=f"m{i}")
        ids.append(out["results"][0]["id"])
    return ids


async def pages(client: Client, room: str, query: str, cursor_name: str) -> list[list[str]]:
    """Follow ``next`` until it is null; the texts of each page."""
    out: list[list[str]] = []
    url = f"/api/rooms/{room}/history?{query}"
    while True:
        data = await call(client, "GET", url)
        out.append([m["text"] for m in data["messages"]])
        if data["next"] is None:
            return out
        url = f"/api/rooms/{room}/history?{query}&{cursor_name}={data['next']}"


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def backend(request: Any, make_api: MakeApi, tmp_path: Any) -> Client:
    if request.param == "sqlite":
        return await make_api(store=f"sqlite:{tmp_path / 'db.sqlite'}")
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return await make_api(broker=server.url)
    return await make_api()


async def test_history_pages_forward_and_backward(backend: Client) -> None:
    ids = await fill(backend, "r", 7)
    assert await pages(backend, "r", "limit=3", "since") == [
        ["m0", "m1", "m2"],
        ["m3", "m4", "m5"],
        ["m6"],
    ]
    assert await pages(backend, "r", "limit=3&reverse=1", "before") == [
        ["m6", "m5", "m4"],
        ["m3", "m2", "m1"],
        ["m0"],
    ]
    data = await call(backend, "GET", f"/api/rooms/r/history?since={ids[1]}&before={ids[5]}")
    assert [m["text"] for m in data["messages"]] == ["m2", "m3", "m4"]
    assert data["next"] is None
    query = f"before={ids[5]}&since={ids[1]}&reverse=1&limit=2"
    data = await call(backend, "GET", f"/api/rooms/r/history?{query}")
    assert [m["text"] for m in data["messages"]] == ["m4", "m3"] and data["next"] == ids[3]
    data = await call(backend, "GET", f"/api/rooms/r/history?since={ids[6]}")
    assert data == {"room": "r", "messages": [], "next": None}
    data = await call(backend, "GET", "/api/rooms/empty/history?reverse=1")
    assert data == {"room": "empty", "messages": [], "next": None}


async def test_history_refuses_bad_input(api: Client) -> None:
    for query, code in [
        ("limit=0", "bad_limit"),
        ("limit=1001", "bad_limit"),
        ("limit=x", "bad_limit"),
        ("since=abc", "bad_id"),
        ("before=-1", "bad_id"),
        ("reverse=maybe", "bad_flag"),
    ]:
        data = await call(api, "GET", f"/api/rooms/r/history?{query}", 400)
        assert data["code"] == code, query
    data = await call(api, "GET", "/api/rooms/bad%20room/history", 400)
    assert data["code"] == "bad_room"
    await call(api, "GET", "/api/rooms/r/history?limit=1000")


async def test_private_rooms_are_readable_without_a_user_token(make_api: MakeApi) -> None:
    client = await make_api(secret="s" * 32, private_rooms="team-*")
    await fill(client, "team-a", 2)
    data = await call(client, "GET", "/api/rooms/team-a/history?reverse=1")
    assert [m["text"] for m in data["messages"]] == ["m1", "m0"]
    assert (await client.get("/rooms/team-a/messages")).status == 401


async def join_room(client: Client, room: str, users: list[tuple[str, str]]) -> list[Any]:
    """Open one connection per (user, transport); wait until each is a member."""
    held: list[Any] = []
    for user, transport in users:
        if transport == "ws":
            ws = await client.ws_connect(f"/rooms/{room}/ws?user={user}")
            await ws_until(ws, "presence")
            held.append(ws)
        else:
            sse = SseReader(await client.get(f"/rooms/{room}/events?user={user}"))
            await sse.until("presence")
            held.append(sse.resp)
    return held


async def leave(held: list[Any]) -> None:
    for h in held:
        if isinstance(h, aiohttp.ClientWebSocketResponse):
            await h.close()
        else:
            h.close()


async def test_presence_lists_users_with_connections_per_transport(api: Client) -> None:
    held = await join_room(api, "r", [("ana", "ws"), ("ana", "sse"), ("bo", "ws")])
    await join_room(api, "other", [])
    data = await call(api, "GET", "/api/rooms/r/presence")
    assert data == {
        "room": "r",
        "members": [
            {"user": "ana", "connections": 2, "transports": {"sse": 1, "ws": 1}},
            {"user": "bo", "connections": 1, "transports": {"ws": 1}},
        ],
    }
    stats = await call(api, "GET", "/api/rooms/r/presence/stats")
    assert stats == {"room": "r", "connections": 3, "users": 2, "by_transport": {"sse": 1, "ws": 2}}
    empty = await call(api, "GET", "/api/rooms/nobody/presence/stats")
    assert empty == {"room": "nobody", "connections": 0, "users": 0, "by_transport": {}}
    await leave(held)


async def test_presence_counts_every_process_with_redis(
    make_api: MakeApi, redis_server: RedisServer
) -> None:
    a = await make_api(broker=redis_server.url)
    b = await make_api(broker=redis_server.url)
    await join_room(a, "r", [("ana", "ws")])
    await join_room(b, "r", [("ana", "sse"), ("bo", "ws")])
    for client in (a, b):
        stats = await call(client, "GET", "/api/rooms/r/presence/stats")
        assert stats["connections"] == 3 and stats["users"] == 2
        assert stats["by_transport"] == {"sse": 1, "ws": 2}
        data = await call(client, "GET", "/api/rooms/r/presence")
        assert [(m["user"], m["connections"]) for m in data["members"]] == [("ana", 2), ("bo", 1)]


async def test_the_room_list_is_paged_by_name_with_a_prefix(api: Client) -> None:
    for name in ["team-b", "team-a", "lobby", "team-c", "news"]:
        await publish(api, room=name, text="x")
    await join_room(api, "team-a", [("ana", "ws")])
    data = await call(api, "GET", "/api/rooms?prefix=team-&limit=2")
    assert [r["room"] for r in data["rooms"]] == ["team-a", "team-b"]
    assert data["rooms"][0]["total"] == 1 and data["rooms"][0]["members"]["ws"] == 1
    assert data["next"] == "team-b"
    data = await call(api, "GET", f"/api/rooms?prefix=team-&limit=2&cursor={data['next']}")
    assert [r["room"] for r in data["rooms"]] == ["team-c"] and data["next"] is None
    data = await call(api, "GET", "/api/rooms")
    assert [r["room"] for r in data["rooms"]] == ["lobby", "news", "team-a", "team-b", "team-c"]
    assert (await call(api, "GET", "/api/rooms?limit=0", 400))["code"] == "bad_limit"
