"""``realtime.client`` subscriptions against a real server: what arrives, in
which order, once; resume after the server cuts the connection; gaps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from realtime.client import (
    Backoff,
    Client,
    Event,
    Gap,
    Message,
    Options,
    Presence,
    Refused,
    State,
    Subscription,
)
from realtime.core.room import CloseReason
from realtime.transports.state import HUB

from .conftest import MakeClient
from .helpers import post
from .proxy import Proxy

ALL = ["ws", "sse", "poll"]
STREAMS = ["ws", "sse"]  # transports that hold one connection (and are presence members)
FAST = Options(backoff=Backoff(initial=0.05, cap=0.5), give_up_after=20.0)


def base_url(server: Any) -> str:
    return str(server.make_url("/"))


def cut(server: Any, reason: CloseReason = CloseReason.SHUTDOWN) -> None:
    """The server ends every room connection (WS close 1001 / SSE stream ended)."""
    server.server.app[HUB].close_all(reason)


async def messages(sub: Subscription, n: int) -> list[Message]:
    out: list[Message] = []
    async for event in sub:
        if isinstance(event, Message):
            out.append(event)
            if len(out) == n:
                break
    return out


async def first_of(sub: Subscription, kind: type[Event]) -> Any:
    async for event in sub:
        if isinstance(event, kind):
            return event
    raise AssertionError("the subscription ended")


async def ready(sub: Subscription) -> None:
    """Joined: our own presence over WS and SSE, the first answer of a poll."""
    if sub.transport != "poll":
        await first_of(sub, Presence)
        return
    for _ in range(1000):
        if sub.state is State.LIVE:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still {sub.state}")


@pytest.mark.parametrize("transport", STREAMS)
async def test_replay_then_live_messages_and_own_presence(
    make_client: MakeClient, transport: str
) -> None:
    server = await make_client(replay=2)
    for text in ("one", "two", "three"):
        await post(server, "r", text)
    async with (
        Client(base_url(server), user="ana", options=FAST) as client,
        client.subscribe("r", transport=transport) as sub,
    ):
        assert [m.text for m in await messages(sub, 2)] == ["two", "three"]
        joined = await first_of(sub, Presence)
        assert (joined.event, joined.user, joined.transport) == ("join", "ana", transport)
        assert sub.state is State.LIVE
        await post(server, "r", "four")
        (live,) = await messages(sub, 1)
        assert (live.id, live.user, live.text, live.room) == ("4", "poster", "four", "r")
        assert sub.last_id == "4" and sub.reconnects == 0
    assert sub.state is State.CLOSED


@pytest.mark.parametrize("transport", STREAMS)
async def test_resumes_after_the_server_cuts_without_duplicate(
    make_client: MakeClient, transport: str
) -> None:
    server = await make_client()
    async with (
        Client(base_url(server), user="bo", options=FAST) as client,
        client.subscribe("r", transport=transport) as sub,
    ):
        await first_of(sub, Presence)
        for i in range(3):
            await post(server, "r", f"m{i}")
        assert [m.id for m in await messages(sub, 3)] == ["1", "2", "3"]
        cut(server)
        for i in range(3, 8):  # sent while the subscriber is away or coming back
            await post(server, "r", f"m{i}")
        got = await messages(sub, 5)
        assert [m.id for m in got] == ["4", "5", "6", "7", "8"]
        assert sub.reconnects == 1 and sub.last_id == "8"
        await post(server, "r", "after")
        (after,) = await messages(sub, 1)
        assert after.id == "9"  # nothing repeated in between


@pytest.mark.parametrize("transport", ALL)
async def test_since_resumes_after_that_id(make_client: MakeClient, transport: str) -> None:
    server = await make_client()
    for i in range(6):
        await post(server, "r", f"m{i}")
    async with (
        Client(base_url(server), options=FAST) as client,
        client.subscribe("r", transport=transport, since="3") as sub,
    ):
        assert [m.id for m in await messages(sub, 3)] == ["4", "5", "6"]


@pytest.mark.parametrize("transport", ALL)
async def test_gap_when_history_no_longer_holds_the_resume_point(
    make_client: MakeClient, transport: str
) -> None:
    server = await make_client(history_size=3, replay=3)
    for i in range(10):
        await post(server, "r", f"m{i}")
    async with (
        Client(base_url(server), options=FAST) as client,
        client.subscribe("r", transport=transport, since="2") as sub,
    ):
        gap = await anext(sub)
        assert isinstance(gap, Gap)
        assert (gap.since, gap.first_id) == ("2", "8")
        assert [m.id for m in await messages(sub, 3)] == ["8", "9", "10"]


@pytest.mark.parametrize("transport", ALL)
async def test_after_a_store_reset_the_new_sequence_is_delivered(
    make_client: MakeClient, transport: str
) -> None:
    """A resume point newer than anything held (a fresh memory store) is a
    gap too; the lower ids that follow are new messages, not repeats."""
    server = await make_client()
    await post(server, "r", "m0")
    async with (
        Client(base_url(server), options=FAST) as client,
        client.subscribe("r", transport=transport, since="50") as sub,
    ):
        assert isinstance(await anext(sub), Gap)
        (first,) = await messages(sub, 1)
        assert first.id == "1"


@pytest.mark.parametrize("transport", ALL)
async def test_refusal_is_raised_not_retried(make_client: MakeClient, transport: str) -> None:
    server = await make_client(secret="s" * 32, private_rooms="team-*")
    async with (
        Client(base_url(server), options=FAST) as client,
        client.subscribe("team-a", transport=transport) as sub,
    ):
        with pytest.raises(Refused) as refused:
            await anext(sub)
    assert refused.value.status == 401 and refused.value.code == "token_required"
    assert sub.state is State.CLOSED and sub.reconnects == 0


def test_bad_arguments_fail_at_once() -> None:
    client = Client("http://127.0.0.1:1")
    with pytest.raises(ValueError):
        Client("ftp://example.org")
    with pytest.raises(Exception, match="async with"):
        client.subscribe("r")


@pytest.mark.parametrize("transport", ALL)
async def test_network_cut_resumes_without_duplicate(
    make_client: MakeClient, transport: str
) -> None:
    server = await make_client()
    async with (
        Proxy(server.host, server.port) as proxy,
        Client(proxy.url, options=FAST) as client,
        client.subscribe("r", transport=transport) as sub,
    ):
        await ready(sub)
        await post(server, "r", "m0")
        await messages(sub, 1)
        proxy.cut()
        for i in range(1, 4):
            await post(server, "r", f"m{i}")
        assert [m.text for m in await messages(sub, 3)] == ["m1", "m2", "m3"]
        # A poll notices a cut only when it falls while a request is held.
        assert sub.reconnects == 1 or (transport == "poll" and sub.reconnects == 0)


@pytest.mark.parametrize("transport", ALL)
async def test_a_silent_connection_is_replaced(make_client: MakeClient, transport: str) -> None:
    """The server's packets stop arriving (no close, no reset): the client
    notices the silence within ``idle_timeout`` and resumes elsewhere."""
    server = await make_client(heartbeat=0.3)
    quick = Options(backoff=Backoff(initial=0.05, cap=0.5), idle_timeout=1.0, poll_timeout=1.0)
    async with (
        Proxy(server.host, server.port) as proxy,
        Client(proxy.url, options=quick) as client,
        client.subscribe("r", transport=transport) as sub,
    ):
        await ready(sub)
        proxy.mute()
        await post(server, "r", "while muted")
        async with asyncio.timeout(10):
            (msg,) = await messages(sub, 1)
        assert msg.text == "while muted" and sub.reconnects == 1
