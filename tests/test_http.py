"""Plain HTTP routes: POST to send, history, the room list, health, pages."""

from __future__ import annotations

import asyncio
from typing import Any

from .conftest import MakeClient
from .helpers import post


async def test_post_returns_201_with_the_stored_message(client: Any) -> None:
    resp = await client.post(
        "/rooms/r/messages", json={"text": "hi", "user": "ana", "client_id": "c1"}
    )
    assert resp.status == 201
    msg = await resp.json()
    assert msg["type"] == "message" and msg["id"] == "1" and msg["user"] == "ana"
    assert msg["client_id"] == "c1"


async def test_post_user_from_query_or_default(client: Any) -> None:
    assert (await post(client, "r", "x", user="bo"))["user"] == "bo"
    resp = await client.post("/rooms/r/messages?user=cy", json={"text": "y"})
    assert (await resp.json())["user"] == "cy"
    resp = await client.post("/rooms/r/messages", json={"text": "z"})
    assert (await resp.json())["user"].startswith("anon-")


async def test_post_bad_input_rows(make_client: MakeClient) -> None:
    client = await make_client(max_message_bytes=50)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"data": "not json", "headers": {"Content-Type": "application/json"}}, 400, "bad_json"),
        (
            {"data": "text=hi", "headers": {"Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ({"json": {"text": "x" * 51}}, 413, "too_long"),
        (
            {"data": "x" * 200_000, "headers": {"Content-Type": "application/json"}},
            413,
            "too_large",
        ),
        ({"json": {"text": ""}}, 400, "empty_text"),
        ({"json": {"text": 3}}, 400, "bad_message"),
        ({"json": ["text"]}, 400, "bad_message"),
        ({"json": {"text": "x", "user": "u" * 40}}, 400, "bad_user"),
        ({"json": {"text": "x", "user": 7}}, 400, "bad_user"),
    ]
    for kwargs, status, code in cases:
        resp = await client.post("/rooms/r/messages", **kwargs)
        assert resp.status == status, (kwargs, await resp.text())
        assert resp.content_type == "application/json"
        body = await resp.json()
        assert body["type"] == "error" and body["code"] == code and body["detail"]
    resp = await client.post("/rooms/bad room/messages", json={"text": "x"})
    assert resp.status == 400 and (await resp.json())["code"] == "bad_room"
    history = await (await client.get("/rooms/r/messages")).json()
    assert history["messages"] == []  # nothing half-stored


async def test_history_since_and_limit(client: Any) -> None:
    for i in range(10):
        await post(client, "h", f"m{i}")
    data = await (await client.get("/rooms/h/messages?limit=3")).json()
    assert [m["text"] for m in data["messages"]] == ["m7", "m8", "m9"]
    assert data["gap"] is False and data["room"] == "h"
    data = await (await client.get("/rooms/h/messages?since=6&limit=2")).json()
    assert [m["id"] for m in data["messages"]] == ["7", "8"]
    data = await (await client.get("/rooms/h/messages")).json()
    assert len(data["messages"]) == 10
    for bad in ["limit=0", "limit=x", "limit=100000", "since=zz"]:
        resp = await client.get(f"/rooms/h/messages?{bad}")
        assert resp.status == 400, bad


async def test_rooms_lists_history_rooms(client: Any) -> None:
    await post(client, "quiet", "x")
    rooms = (await (await client.get("/rooms")).json())["rooms"]
    assert {"room": "quiet", "members": {"ws": 0, "sse": 0}, "total": 0} in rooms


async def test_healthz(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["broker"] == "memory"


async def test_pages_are_served(client: Any) -> None:
    for path in ["/", "/compare"]:
        resp = await client.get(path)
        assert resp.status == 200 and resp.content_type == "text/html"
        assert "<html" in (await resp.text()).lower()


async def test_odd_digits_in_limit_or_ids_are_400_not_500(client: Any) -> None:
    for query in ["limit=%C2%B2", "since=%D9%A3"]:
        resp = await client.get(f"/rooms/r/messages?{query}")
        assert resp.status == 400, query


async def test_event_stream_over_http_1_0_is_refused_clearly(client: Any) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /rooms/r/events HTTP/1.0\r\nHost: x\r\n\r\n")
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert b" 505 " in status


async def test_a_slow_post_body_gets_408(make_client: MakeClient) -> None:
    client = await make_client(request_timeout=0.5)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(
            b"POST /rooms/r/messages HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"text":'
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 408"), head
    finally:
        writer.close()
    assert (await (await client.get("/rooms/r/messages?since=0")).json())["messages"] == []


async def test_rooms_are_listed_a_page_at_a_time(client: Any) -> None:
    names = [f"room-{i:02d}" for i in range(7)]
    for name in names:
        await post(client, name, "hi")
    seen: list[str] = []
    url = "/rooms?limit=3"
    for _ in range(10):
        page = await (await client.get(url)).json()
        assert len(page["rooms"]) <= 3
        seen += [r["room"] for r in page["rooms"]]
        if page["next"] is None:
            break
        url = f"/rooms?limit=3&cursor={page['next']}"
    assert seen == names
    default = await (await client.get("/rooms")).json()
    assert [r["room"] for r in default["rooms"]] == names and default["next"] is None
    for bad in ["0", "x", "1001"]:
        resp = await client.get(f"/rooms?limit={bad}")
        assert resp.status == 400 and (await resp.json())["code"] == "bad_limit"
    resp = await client.get("/rooms?cursor=" + "x" * 65)
    assert resp.status == 400 and (await resp.json())["code"] == "bad_cursor"
