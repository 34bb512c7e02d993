"""Tokens after connect: a connection ends when its token expires (WebSocket
close 4003, SSE a final ``token_expired`` error), a WebSocket may refresh
first, and publisher tokens may send but not subscribe."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import jwt

from realtime.policy.tokens import verify

from .conftest import MakeClient
from .helpers import SseReader, post, ws_json, ws_messages, ws_until
from .test_tokens import token_cli

SECRET = "expiry-secret-0123456789abcdef-01"
PRIVATE = "team-*"


def token(user: str, rooms: list[str], exp: float, **claims: Any) -> str:
    return jwt.encode(
        {"sub": user, "rooms": rooms, "exp": int(exp), **claims}, SECRET, algorithm="HS256"
    )


def soon(seconds: int = 2) -> int:
    """An ``exp`` a little ahead (whole seconds, as every JWT has)."""
    return int(time.time()) + seconds


async def server(make_client: MakeClient) -> Any:
    return await make_client(secret=SECRET, private_rooms=PRIVATE)


async def close_of(ws: aiohttp.ClientWebSocketResponse, timeout: float = 6) -> tuple[int, str]:
    """The code and reason of the server's close frame (see tests/test_api.py)."""
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return int(msg.data), str(msg.extra or "")
        if msg.type is aiohttp.WSMsgType.CLOSED:
            return ws.close_code or 0, ""


async def test_websocket_is_closed_with_4003_at_exp(make_client: MakeClient) -> None:
    client = await server(make_client)
    for room in ("team-a", "lobby"):  # a token's expiry counts in public rooms too
        exp = soon()
        ws = await client.ws_connect(f"/rooms/{room}/ws?token={token('ana', [PRIVATE], exp)}")
        await ws_until(ws, "presence")
        assert await close_of(ws) == (4003, "token expired")
        late = time.time() - exp
        assert 0 <= late < 1.0, late
    metrics = await (await client.get("/metrics")).text()
    assert "realtime_token_expiries_total 2.0" in metrics


async def test_sse_gets_a_token_expired_error_at_exp_then_ends(make_client: MakeClient) -> None:
    client = await server(make_client)
    exp = soon()
    sse = SseReader(await client.get(f"/rooms/team-a/events?token={token('ana', [PRIVATE], exp)}"))
    await sse.until("presence")
    ev = await sse.until("error", timeout=6)
    late = time.time() - exp
    assert ev.data["code"] == "token_expired"
    assert 0 <= late < 1.0, late
    assert await sse.ended()


async def test_a_refreshed_websocket_outlives_its_first_token(make_client: MakeClient) -> None:
    client = await server(make_client)
    exp = soon()
    ws = await client.ws_connect(f"/rooms/team-a/ws?token={token('ana', ['team-a'], exp)}")
    await ws_until(ws, "presence")
    later = exp + 60
    await ws.send_json({"type": "refresh", "token": token("ana", ["team-*"], later)})
    assert await ws_until(ws, "refreshed") == {"type": "refreshed", "exp": later}
    while time.time() < exp + 0.5:  # past the first token's expiry
        await ws.send_json({"type": "send", "text": "still here"})
        await ws_messages(ws, 1)
    await ws.send_json({"type": "send", "text": "after"})
    assert (await ws_messages(ws, 1))[0]["text"] == "after"
    await ws.close()


async def test_bad_refreshes_are_refused_and_the_old_expiry_stays(
    make_client: MakeClient,
) -> None:
    client = await server(make_client)
    exp = soon(3)
    ws = await client.ws_connect(f"/rooms/team-a/ws?token={token('ana', ['team-*'], exp)}")
    await ws_until(ws, "presence")
    for bad, code in [
        (token("bo", ["team-*"], exp + 60), "refresh_refused"),  # another user
        (token("ana", ["team-a"], exp + 60), "refresh_refused"),  # narrower rooms
        (token("ana", ["team-*"], exp - 1), "refresh_refused"),  # not later
        (token("ana", ["team-*"], time.time() - 5), "token_expired"),
        ("not.a.token", "bad_token"),
        (5, "bad_message"),
    ]:
        await ws.send_json({"type": "refresh", "token": bad})
        err = await ws_json(ws)
        assert (err["type"], err["code"]) == ("error", code), bad
    assert await close_of(ws) == (4003, "token expired")
    assert 0 <= time.time() - exp < 1.0


async def test_sse_resumes_with_a_new_token_without_a_gap(make_client: MakeClient) -> None:
    client = await server(make_client)
    exp = soon()
    url = "/rooms/team-a/events?token="
    sse = SseReader(await client.get(url + token("ana", [PRIVATE], exp)))
    publisher = token("svc", [PRIVATE], exp + 60, pub=True)
    headers = {"Authorization": f"Bearer {publisher}"}
    await sse.until("presence")
    resp = await client.post("/rooms/team-a/messages", json={"text": "one"}, headers=headers)
    assert resp.status == 201
    await sse.messages(1)
    await sse.until("error", timeout=6)
    resp = await client.post("/rooms/team-a/messages", json={"text": "two"}, headers=headers)
    fresh = token("ana", [PRIVATE], exp + 60)
    again = SseReader(await client.get(url + fresh, headers={"Last-Event-ID": sse.last_id or ""}))
    assert [m["text"] for m in await again.messages(1)] == ["two"]
    again.resp.close()


async def test_publisher_tokens_send_but_do_not_subscribe(make_client: MakeClient) -> None:
    client = await server(make_client)
    pub = token("svc", [PRIVATE], soon(60), pub=True)
    resp = await client.post(
        "/rooms/team-a/messages", json={"text": "hi"}, headers={"Authorization": f"Bearer {pub}"}
    )
    assert resp.status == 201 and (await resp.json())["user"] == "svc"
    for url in ("/rooms/team-a/events", "/rooms/team-a/messages", "/rooms/lobby/events"):
        resp = await client.get(f"{url}?token={pub}")
        assert resp.status == 403, url
        assert (await resp.json())["code"] == "publisher_token"
    try:
        await client.ws_connect(f"/rooms/team-a/ws?token={pub}")
        raise AssertionError("a publisher token subscribed")
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 403
    await post(client, "lobby", "public rooms need no token")


def test_the_token_command_mints_publisher_tokens() -> None:
    grant = verify(SECRET, token_cli(SECRET, "--user", "svc", "--publisher"))
    assert grant.user == "svc" and grant.publisher
