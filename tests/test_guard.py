"""Who may connect and send: Origin, rate limits, connection caps, tokens, headers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import jwt
import pytest

from realtime.policy.tokens import mint

from .conftest import MakeClient
from .helpers import SseReader, raw_ws, ws_json, ws_until

SECRET = "test-secret-0123456789abcdef-0123"


async def upgrade_status(client: Any, url: str, **kwargs: Any) -> int:
    try:
        ws = await client.ws_connect(url, **kwargs)
    except aiohttp.WSServerHandshakeError as err:
        return err.status
    await ws.close()
    return 101


async def test_cross_site_origin_is_refused_on_upgrade_and_post(make_client: MakeClient) -> None:
    client = await make_client(allow_origin="https://app.example")
    own = f"http://{client.host}:{client.port}"
    for origin, status in [
        ("https://evil.example", 403),
        ("null", 403),
        ("http://localhost:3000", 101),
        (own, 101),
        ("https://app.example", 101),
    ]:
        got = await upgrade_status(client, "/rooms/r/ws", headers={"Origin": origin})
        assert got == status, origin
    assert await upgrade_status(client, "/rooms/r/ws") == 101  # no Origin: not a browser
    assert (
        await upgrade_status(client, "/ws/echo", headers={"Origin": "https://evil.example"}) == 403
    )

    resp = await client.post(
        "/rooms/r/messages", json={"text": "csrf"}, headers={"Origin": "https://evil.example"}
    )
    assert resp.status == 403 and (await resp.json())["code"] == "origin_not_allowed"
    resp = await client.post("/rooms/r/messages", json={"text": "ok"}, headers={"Origin": own})
    assert resp.status == 201
    texts = [m["text"] for m in (await (await client.get("/rooms/r/messages")).json())["messages"]]
    assert texts == ["ok"]


async def test_websocket_rate_limit_answers_rate_limited(make_client: MakeClient) -> None:
    client = await make_client(rate_limit="1/min", rate_burst=3)
    async with client.ws_connect("/rooms/r/ws") as ws:
        await ws_until(ws, "presence")
        for i in range(5):
            await ws.send_json({"text": f"m{i}"})
        seen = [await ws_json(ws) for _ in range(5)]
    assert [m["text"] for m in seen if m["type"] == "message"] == ["m0", "m1", "m2"]
    assert [m["code"] for m in seen if m["type"] == "error"] == ["rate_limited"] * 2


async def test_post_rate_limit_is_429_with_retry_after(make_client: MakeClient) -> None:
    client = await make_client(rate_limit="1/min", rate_burst=2)
    statuses = []
    for i in range(3):
        resp = await client.post("/rooms/r/messages", json={"text": f"m{i}"})
        statuses.append(resp.status)
    assert statuses == [201, 201, 429]
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await resp.json())["code"] == "rate_limited"
    history = (await (await client.get("/rooms/r/messages")).json())["messages"]
    assert len(history) == 2


async def test_connection_cap_per_address(make_client: MakeClient) -> None:
    client = await make_client(max_connections_per_ip=2)
    a = await client.ws_connect("/rooms/r/ws")
    sse = await client.get("/rooms/r/events")
    assert sse.status == 200
    assert await upgrade_status(client, "/rooms/r/ws") == 429
    resp = await client.get("/rooms/r/events")
    assert resp.status == 429 and (await resp.json())["code"] == "too_many_connections"
    await a.close()
    sse.close()
    for _ in range(50):  # the server notices the closes within a moment
        if await upgrade_status(client, "/rooms/r/ws") == 101:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("slots were not released")


@pytest.fixture
async def private(make_client: MakeClient) -> Any:
    return await make_client(secret=SECRET, private_rooms="team-*")


async def test_private_room_refuses_missing_expired_forged_and_wrong_room_tokens(
    private: Any,
) -> None:
    now = int(time.time())
    expired = jwt.encode({"sub": "ana", "rooms": ["team-*"], "exp": now - 10}, SECRET, "HS256")
    forged = jwt.encode({"sub": "ana", "rooms": ["team-*"], "exp": now + 60}, SECRET[::-1], "HS256")
    wrong_room = mint(SECRET, "ana", ["ops-*"], 60)
    for token, status in [
        (None, 401),
        (expired, 401),
        (forged, 401),
        ("junk", 401),
        (wrong_room, 403),
    ]:
        query = f"?token={token}" if token else ""
        assert await upgrade_status(private, f"/rooms/team-a/ws{query}") == status
        resp = await private.get(f"/rooms/team-a/events{query}")
        assert resp.status == status
        assert (await resp.json())["type"] == "error"
        resp = await private.post(f"/rooms/team-a/messages{query}", json={"text": "x"})
        assert resp.status == status
        assert (await private.get(f"/rooms/team-a/messages{query}")).status == status
    token = mint(SECRET, "ana", ["team-*"], 60)
    resp = await private.get(f"/rooms/team-a/messages?token={token}")
    assert (await resp.json())["messages"] == []  # nothing refused was stored


async def test_token_names_the_user_and_spoofing_is_ignored(private: Any) -> None:
    token = mint(SECRET, "ana", ["team-*"], 60)
    # WebSocket: token in Sec-WebSocket-Protocol, a spoofed ?user= ignored
    async with private.ws_connect(
        "/rooms/team-a/ws?user=mallory", protocols=("realtime", token)
    ) as ws:
        assert ws.protocol == "realtime"
        presence = await ws_until(ws, "presence")
        assert presence["user"] == "ana"
        await ws.send_json({"text": "from ws"})
        assert (await ws_until(ws, "message"))["user"] == "ana"
    # SSE: token in a cookie
    private.session.cookie_jar.update_cookies({"realtime_token": token})
    reader = SseReader(await private.get("/rooms/team-a/events?user=mallory"))
    assert (await reader.until("presence")).data["user"] == "ana"
    private.session.cookie_jar.clear()
    # POST: Authorization header; "user" in the body does not override the token
    resp = await private.post(
        "/rooms/team-a/messages",
        json={"text": "spoof", "user": "mallory"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 201 and (await resp.json())["user"] == "ana"
    # public rooms stay open without a token
    resp = await private.post("/rooms/lobby/messages", json={"text": "hi", "user": "bo"})
    assert resp.status == 201 and (await resp.json())["user"] == "bo"


async def test_private_rooms_without_secret_are_closed(make_client: MakeClient) -> None:
    client = await make_client(private_rooms="team-*")
    assert await upgrade_status(client, "/rooms/team-a/ws") == 403


async def test_pages_carry_csp_and_nosniff(client: Any) -> None:
    resp = await client.get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    resp = await client.get("/rooms")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_private_history_and_room_names_need_a_token(private: Any) -> None:
    token = mint(SECRET, "ana", ["team-*"], 60)
    resp = await private.post(
        "/rooms/team-a/messages",
        json={"text": "secret"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 201
    assert (await private.get("/rooms/team-a/messages?since=0")).status == 401
    resp = await private.get(f"/rooms/team-a/messages?token={token}")
    assert [m["text"] for m in (await resp.json())["messages"]] == ["secret"]
    names = [r["room"] for r in (await (await private.get("/rooms")).json())["rooms"]]
    assert "team-a" not in names


async def test_echo_counts_against_the_connection_cap(make_client: MakeClient) -> None:
    client = await make_client(max_connections_per_ip=1)
    async with client.ws_connect("/ws/echo"):
        assert await upgrade_status(client, "/ws/echo") == 429


async def test_too_many_connections_says_when_to_retry(make_client: MakeClient) -> None:
    client = await make_client(max_connections_per_ip=1)
    async with client.ws_connect("/rooms/r/ws"):
        resp = await client.get("/rooms/r/events")
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        raw = await raw_ws(client, "/rooms/r/ws")
        raw.close()
        assert raw.status == 429 and int(raw.headers["retry-after"]) >= 1
