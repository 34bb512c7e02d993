"""Sending with ``realtime.client``: over the room's open WebSocket, by POST
otherwise, the server's refusals, and a send cut by a dropped socket."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from realtime.client import Client, Message, Presence, Refused
from realtime.client.sending import find_sent
from realtime.policy import tokens

from .conftest import MakeClient
from .helpers import until
from .proxy import Proxy
from .test_client_subscription import FAST, base_url, cut, first_of, messages, ready


async def test_send_over_the_open_websocket_returns_the_stored_message(
    make_client: MakeClient,
) -> None:
    server = await make_client()
    async with (
        Client(base_url(server), user="ana", options=FAST) as client,
        client.subscribe("r", transport="ws") as sub,
    ):
        await first_of(sub, Presence)
        sent = await client.send("r", "hello", client_id="mine-1")
        assert (sent.id, sent.user, sent.text, sent.client_id) == ("1", "ana", "hello", "mine-1")
        (seen,) = await messages(sub, 1)
        assert seen == sent
        # An error answer comes back over the socket (no HTTP status).
        with pytest.raises(Refused) as refused:
            await client.send("r", "   ")
        assert refused.value.code == "empty_text" and refused.value.status is None
        assert (await client.send("r", "still fine")).id == "2"


async def test_concurrent_sends_each_get_their_own_message(make_client: MakeClient) -> None:
    server = await make_client()
    async with (
        Client(base_url(server), user="ana", options=FAST) as client,
        client.subscribe("r", transport="ws") as sub,
    ):
        await first_of(sub, Presence)
        sent = await asyncio.gather(*(client.send("r", f"t{i}") for i in range(20)))
        assert [m.text for m in sent] == [f"t{i}" for i in range(20)]
        assert len({m.id for m in sent}) == 20
        assert sorted(m.id for m in await messages(sub, 20)) == sorted(m.id for m in sent)


@pytest.mark.parametrize("transport", [None, "sse", "poll"])
async def test_send_without_an_open_websocket_posts(
    make_client: MakeClient, transport: str | None
) -> None:
    server = await make_client()
    async with Client(base_url(server), user="bo", options=FAST) as client:
        if transport is None:
            sent = await client.send("r", "by post")
        else:
            async with client.subscribe("r", transport=transport) as sub:
                await ready(sub)
                sent = await client.send("r", "by post")
                assert (await messages(sub, 1)) == [sent]
        assert (sent.id, sent.user, sent.text) == ("1", "bo", "by post")
        with pytest.raises(Refused) as refused:
            await client.send("r", "")
        assert (refused.value.status, refused.value.code) == (400, "empty_text")
        with pytest.raises(Refused) as refused:
            await client.send("bad room!", "x")
        assert (refused.value.status, refused.value.code) == (400, "bad_room")


async def test_a_send_cut_by_the_server_is_stored_exactly_once(make_client: MakeClient) -> None:
    server = await make_client()
    async with (
        Client(base_url(server), user="ana", options=FAST) as client,
        client.subscribe("r", transport="ws") as sub,
    ):
        await first_of(sub, Presence)
        for i in range(6):
            await until(lambda: sub.can_send)
            if i % 2:  # the frame is on its way when the server closes
                sending = asyncio.create_task(client.send("r", f"cut-{i}"))
                await asyncio.sleep(0)
                cut(server)
            else:  # the server is closing when the frame arrives: it is not stored
                cut(server)
                sending = asyncio.create_task(client.send("r", f"cut-{i}"))
            sent = await sending
            assert sent.text == f"cut-{i}"
        history = await client.history("r", since="0", limit=100)
        counts = Counter(m.text for m in history.messages)
        assert counts == Counter(f"cut-{i}" for i in range(6))
        got = await messages(sub, 6)
        assert [m.text for m in got] == [f"cut-{i}" for i in range(6)]


async def test_a_send_stored_but_unanswered_is_not_sent_again(make_client: MakeClient) -> None:
    """The server stores the message but its answer is lost with the
    connection: the history says it is there, so it is not sent twice."""
    server = await make_client()
    async with (
        Proxy(server.host, server.port) as proxy,
        Client(proxy.url, user="ana", options=FAST) as client,
        client.subscribe("r", transport="ws") as sub,
    ):
        await first_of(sub, Presence)
        proxy.mute()
        sending = asyncio.create_task(client.send("r", "once"))
        stored = await until_stored(server, "once")
        proxy.cut()
        sent = await sending
        assert sent.id == stored
        history = await client.history("r", since="0", limit=10)
        assert [m.text for m in history.messages] == ["once"]
        assert [m.id for m in await messages(sub, 1)] == [stored]  # on the resumed stream


async def until_stored(server: Any, text: str) -> str:
    for _ in range(500):
        resp = await server.get("/rooms/r/messages?since=0&limit=10")
        for msg in (await resp.json())["messages"]:
            if msg["text"] == text:
                return str(msg["id"])
        await asyncio.sleep(0.01)
    raise AssertionError(f"{text!r} was not stored")


async def test_find_sent_pages_through_history(make_client: MakeClient) -> None:
    server = await make_client(history_size=300)
    async with Client(base_url(server), user="ana", options=FAST) as client:
        for i in range(250):
            await client.send("r", f"m{i}", client_id=f"cid-{i}")
        found = await find_sent(client.ctx, "r", "cid-240", None)
        assert isinstance(found, Message) and found.text == "m240"
        assert await find_sent(client.ctx, "r", "cid-10", "11") is None  # before since
        assert await find_sent(client.ctx, "r", "never-sent", None) is None


async def test_find_sent_with_a_history_smaller_than_a_page(make_client: MakeClient) -> None:
    server = await make_client(history_size=20, replay=20)
    async with Client(base_url(server), options=FAST) as client:
        for i in range(15):
            await client.send("r", f"m{i}", client_id=f"cid-{i}")
        found = await find_sent(client.ctx, "r", "cid-14", None)
        assert found is not None and found.id == "15"


async def test_history(make_client: MakeClient) -> None:
    server = await make_client(history_size=5)
    async with Client(base_url(server), options=FAST) as client:
        for i in range(8):
            await client.send("r", f"m{i}")
        recent = await client.history("r", limit=2)
        assert [m.text for m in recent.messages] == ["m6", "m7"]
        trimmed = await client.history("r", since="1", limit=5)
        assert trimmed.gap and trimmed.messages[0].id == "4"


SECRET = "k" * 32


async def test_an_expired_token_is_renewed_for_a_post(make_client: MakeClient) -> None:
    server = await make_client(secret=SECRET, private_rooms="team-*")
    expired = tokens.mint(SECRET, "ana", ["team-*"], ttl=-10)
    fresh = tokens.mint(SECRET, "ana", ["team-*"], ttl=60)
    async with Client(base_url(server), token=expired, options=FAST) as client:
        with pytest.raises(Refused) as refused:
            await client.send("team-a", "no provider")
        assert (refused.value.status, refused.value.code) == (401, "token_expired")
    async with Client(
        base_url(server), token=expired, token_provider=lambda: fresh, options=FAST
    ) as client:
        sent = await client.send("team-a", "renewed")
        assert sent.user == "ana" and client.token == fresh
        assert [m.text for m in (await client.history("team-a")).messages] == ["renewed"]


async def test_sends_over_one_websocket_are_pipelined(aiohttp_client: Any) -> None:
    """A room that answers sends only once five are in (as a server storing
    them in one batch would): the client has all five on the wire at once,
    in the order they were made, and each gets its own answer; an error names
    the send it answers."""
    from aiohttp import web

    async def room(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("realtime",))
        await ws.prepare(request)
        sends = []
        async for msg in ws:
            sends.append(json.loads(msg.data))
            if len(sends) < 5:
                continue
            for i, send in enumerate(reversed(sends), start=1):  # answers out of order
                if send["text"] == "bad":
                    await ws.send_json(
                        {
                            "type": "error",
                            "code": "nope",
                            "detail": "",
                            "client_id": send["client_id"],
                        }
                    )
                    continue
                body = {"type": "message", "room": "r", "id": str(i), "user": "ana", "ts": 1.0}
                await ws.send_json({**body, "text": send["text"], "client_id": send["client_id"]})
            sends.clear()
        return ws

    app = web.Application()
    app.router.add_get("/rooms/{room}/ws", room)
    server = await aiohttp_client(app)
    async with (
        Client(base_url(server), user="ana", options=FAST) as client,
        client.subscribe("r", transport="ws") as sub,
    ):
        await until(lambda: sub.can_send)
        texts = ["t0", "t1", "bad", "t3", "t4"]
        sent = await asyncio.gather(*(client.send("r", t) for t in texts), return_exceptions=True)
        assert [m.text for m in sent if isinstance(m, Message)] == ["t0", "t1", "t3", "t4"]
        assert isinstance(sent[2], Refused) and sent[2].code == "nope"
