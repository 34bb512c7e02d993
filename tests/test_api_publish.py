"""``POST /api/publish``: one room or many, per-room errors, idempotent retries
(concurrent ones too, across a restart with SQLite and across processes with Redis)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from .api_helpers import HEADERS, Client, MakeApi, api, call, make_api, publish
from .helpers import SseReader, ws_messages, ws_until
from .redis_server import RedisServer, redis_server

__all__ = ["api", "make_api", "redis_server"]


async def texts(client: Client, room: str) -> list[str]:
    data = await call(client, "GET", f"/api/rooms/{room}/history")
    return [m["text"] for m in data["messages"]]


async def test_one_room_reaches_websocket_and_sse_subscribers(api: Client) -> None:
    ws = await api.ws_connect("/rooms/news/ws?user=ana")
    sse = SseReader(await api.get("/rooms/news/events?user=bo"))
    try:
        await ws_until(ws, "presence")
        await sse.until("presence")
        out = await publish(api, room="news", text="deploy done", client_id="c-1")
        assert out == {"results": [{"room": "news", "id": "1"}]}
        [got_ws] = await ws_messages(ws, 1)
        [got_sse] = await sse.messages(1)
        for got in (got_ws, got_sse):
            assert got["text"] == "deploy done" and got["id"] == "1"
            assert got["user"] == "server" and got["client_id"] == "c-1"
    finally:
        await ws.close()
        sse.resp.close()


async def test_many_rooms_in_one_call_with_a_user(api: Client) -> None:
    rooms = [f"room-{i}" for i in range(1000)]
    out = await publish(api, rooms=rooms, text="maintenance at 5", user="ops")
    assert [r["room"] for r in out["results"]] == rooms
    assert all(r["id"] == "1" for r in out["results"])
    history = await call(api, "GET", "/api/rooms/room-999/history")
    assert [(m["user"], m["text"]) for m in history["messages"]] == [("ops", "maintenance at 5")]


async def test_bad_rooms_fail_alone_with_the_public_codes(api: Client) -> None:
    out = await publish(api, rooms=["ok-1", "bad room", 7, "x" * 65, "ok-2"], text="hi")
    results = out["results"]
    assert [r.get("id") for r in results] == ["1", None, None, None, "1"]
    assert [r.get("error", {}).get("code") for r in results] == [
        None,
        "bad_room",
        "bad_room",
        "bad_room",
        None,
    ]
    assert results[1]["room"] == "bad room" and results[2]["room"] is None
    assert await texts(api, "ok-1") == ["hi"] and await texts(api, "ok-2") == ["hi"]


async def test_bad_text_is_reported_for_each_room_and_stores_nothing(make_api: MakeApi) -> None:
    client = await make_api(max_message_bytes=10)
    for body, code in [
        ({"text": "   "}, "empty_text"),
        ({"text": "x" * 11}, "too_long"),
        ({"text": 5}, "bad_message"),
        ({}, "bad_message"),
        ({"text": "ok", "client_id": 9}, "bad_message"),
    ]:
        out = await publish(client, rooms=["a", "b"], **body)
        assert [r["error"]["code"] for r in out["results"]] == [code, code], body
    assert await texts(client, "a") == []


async def test_request_errors_are_400_and_publish_nothing(api: Client) -> None:
    too_many = [f"r{i}" for i in range(1001)]
    for body, code in [
        ({"rooms": too_many, "text": "x"}, "too_many_rooms"),
        ({"text": "x"}, "bad_message"),
        ({"room": "a", "rooms": ["b"], "text": "x"}, "bad_message"),
        ({"rooms": [], "text": "x"}, "bad_message"),
        ({"rooms": "a", "text": "x"}, "bad_message"),
        ({"room": "a", "text": "x", "user": ""}, "bad_user"),
        ({"room": "a", "text": "x", "user": "u" * 33}, "bad_user"),
        ({"room": "a", "text": "x", "idempotency_key": ""}, "bad_idempotency_key"),
        ({"room": "a", "text": "x", "idempotency_key": 5}, "bad_idempotency_key"),
        (["a"], "bad_message"),
    ]:
        out = await call(api, "POST", "/api/publish", 400, json=body)
        assert out["code"] == code, body
    resp = await api.post("/api/publish", data=b"{nope", headers=HEADERS)
    assert resp.status == 415
    resp = await api.post(
        "/api/publish", data=b"{nope", headers={**HEADERS, "Content-Type": "application/json"}
    )
    assert resp.status == 400 and (await resp.json())["code"] == "bad_json"
    huge = b'{"room":"a","text":"' + b"x" * 200_000 + b'"}'
    resp = await api.post(
        "/api/publish", data=huge, headers={**HEADERS, "Content-Type": "application/json"}
    )
    assert resp.status == 413 and (await resp.json())["code"] == "too_large"
    assert await texts(api, "a") == [] and await texts(api, "r0") == []


async def test_private_rooms_need_no_token_here(make_api: MakeApi) -> None:
    client = await make_api(secret="s" * 32, private_rooms="team-*")
    out = await publish(client, room="team-a", text="for the team")
    assert out["results"][0]["id"] == "1"
    resp = await client.get("/rooms/team-a/messages")
    assert resp.status == 401  # still private for everyone else


async def test_a_repeated_idempotency_key_returns_the_first_id(api: Client) -> None:
    first = await publish(api, rooms=["a", "b"], text="once", idempotency_key="job-1")
    again = await publish(api, rooms=["a", "b", "c"], text="once", idempotency_key="job-1")
    assert [r["id"] for r in again["results"]] == ["1", "1", "1"]
    assert [r.get("duplicate") for r in first["results"]] == [None, None]
    assert [r.get("duplicate") for r in again["results"]] == [True, True, None]
    other = await publish(api, room="a", text="twice", idempotency_key="job-2")
    assert other["results"][0]["id"] == "2"
    assert await texts(api, "a") == ["once", "twice"] and await texts(api, "c") == ["once"]


async def test_concurrent_retries_with_one_key_store_one_message(api: Client) -> None:
    ws = await api.ws_connect("/rooms/a/ws?user=ana")
    await ws_until(ws, "presence")
    outs = await asyncio.gather(
        *(publish(api, room="a", text="hello", idempotency_key="k") for _ in range(20))
    )
    ids = {o["results"][0]["id"] for o in outs}
    assert ids == {"1"}
    assert sum(1 for o in outs if not o["results"][0].get("duplicate")) == 1
    await publish(api, room="a", text="after")
    got = await ws_messages(ws, 2)
    assert [m["text"] for m in got] == ["hello", "after"]  # delivered once
    await ws.close()


async def test_the_key_is_forgotten_after_the_window(make_api: MakeApi) -> None:
    client = await make_api(idempotency_window=0.3)
    await publish(client, room="a", text="x", idempotency_key="k")
    await asyncio.sleep(0.5)
    out = await publish(client, room="a", text="x", idempotency_key="k")
    assert out["results"][0] == {"room": "a", "id": "2"}


async def test_keys_survive_a_restart_with_sqlite(make_api: MakeApi, tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'db.sqlite'}"
    first = await make_api(store=store)
    await publish(first, room="a", text="x", idempotency_key="k")
    await first.close()
    second = await make_api(store=store)
    out = await publish(second, room="a", text="x", idempotency_key="k")
    assert out["results"][0] == {"room": "a", "id": "1", "duplicate": True}
    assert await texts(second, "a") == ["x"]


async def test_keys_are_shared_by_processes_with_redis(
    make_api: MakeApi, redis_server: RedisServer
) -> None:
    a = await make_api(broker=redis_server.url)
    b = await make_api(broker=redis_server.url)

    async def send(client: Client) -> dict[str, Any]:
        return (await publish(client, room="r", text="x", idempotency_key="k"))["results"][0]

    outs = await asyncio.gather(*(send(c) for c in (a, b) * 10))
    assert len({o["id"] for o in outs}) == 1
    assert sum(1 for o in outs if not o.get("duplicate")) == 1
    assert await texts(b, "r") == ["x"]
