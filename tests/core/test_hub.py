"""The Hub on the memory backend, driven with in-memory sinks: joins with
history and presence, resume and gap, delivery passes, a broken room."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from realtime.backends import create_backend
from realtime.core.hub import Hub
from realtime.core.ports import Member
from realtime.core.protocol import Draft
from realtime.core.room import CloseReason

from .sinks import MemorySink


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    h = Hub(
        create_backend("memory", history_size=5, store_url="memory"),
        replay=2,
        history_size=5,
        max_buffer=1000,
        presence_limit=3,
    )
    await h.start()
    yield h
    await h.close()


def member(conn: str, user: str = "ana") -> Member:
    return Member(conn, user, "test")


async def send(hub: Hub, text: str, room: str = "r") -> str:
    return (await hub.publish(Draft(room, "u", text, None))).id


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_fresh_join_gets_the_replay_then_live_messages_in_one_order(hub: Hub) -> None:
    for i in range(4):
        await send(hub, f"m{i}")
    sink = MemorySink()
    async with hub.join("r", member("c1"), sink, None):
        await send(hub, "live")
        await settle()
        assert sink.ids() == ["3", "4", "5"]
        assert [e["type"] for e in sink.events()].count("presence") == 1
    assert hub.room_count() == 0


async def test_resume_after_trimmed_history_says_gap_first(hub: Hub) -> None:
    for i in range(8):
        await send(hub, f"m{i}")
    sink = MemorySink()
    async with hub.join("r", member("c1"), sink, "1"):
        kinds = [e["type"] for e in sink.events()]
    assert kinds[0] == "gap" and sink.events()[0]["first_id"] == "4"
    assert sink.ids() == ["4", "5", "6", "7", "8"]


async def test_members_see_each_other_join_and_leave(hub: Hub) -> None:
    a, b = MemorySink(), MemorySink()
    async with hub.join("r", member("c1", "ana"), a, None):
        async with hub.join("r", member("c2", "bo"), b, None):
            await settle()
            rooms = await hub.rooms()
            assert rooms["r"]["test"] == 2
        await settle()
    seen = [(e["event"], e["user"], e["count"]) for e in a.events() if e["type"] == "presence"]
    assert seen == [("join", "ana", 1), ("join", "bo", 2), ("leave", "bo", 1)]


async def test_a_reader_without_presence_is_not_listed(hub: Hub) -> None:
    a, reader = MemorySink(), MemorySink()
    async with hub.join("r", member("c1"), a, None):
        await settle()
        async with hub.join("r", member("p1", "poller"), reader, None, presence=False):
            await send(hub, "hi")
            await settle()
            assert (await hub.rooms())["r"]["test"] == 1
        assert reader.ids() == ["1"], reader.events()
        assert all(e["type"] != "presence" for e in reader.events()), reader.events()
    users = [e["user"] for e in a.events() if e["type"] == "presence"]
    assert users == ["ana"]


async def test_above_the_presence_limit_joins_are_not_broadcast(hub: Hub) -> None:
    sinks = [MemorySink() for _ in range(5)]
    async with contextlib.AsyncExitStack() as stack:
        for i in range(5):
            await stack.enter_async_context(hub.join("r", member(f"c{i}", f"u{i}"), sinks[i], None))
        await settle()
        first = [e["count"] for e in sinks[0].events() if e["type"] == "presence"]
        assert first == [1, 2, 3]  # the 4th and 5th joins are over the limit of 3
        snapshot = [e for e in sinks[4].events() if e["type"] == "presence"]
        counts = {e["count"]: len(e["members"]) for e in snapshot}
        assert counts[5] == 3  # the joiner's own snapshot: the count, the first members


async def test_a_dropped_subscriber_leaves_at_once_and_is_counted(hub: Hub) -> None:
    slow, other = MemorySink(unsent=5000), MemorySink()
    async with hub.join("r", member("c1", "ana"), other, None):
        async with hub.join("r", member("c2", "slow"), slow, None):
            await send(hub, "x")
            await settle()
            assert slow.closed is CloseReason.SLOW and hub.dropped_slow == 1
            leaves = [e["user"] for e in other.events() if e.get("event") == "leave"]
            assert leaves == ["slow"]  # announced before the connection's handler ends
        await settle()
        assert [e["user"] for e in other.events() if e.get("event") == "leave"] == ["slow"]


async def test_a_room_whose_flush_fails_does_not_silence_the_others(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(MemorySink):
        def get_write_buffer_size(self) -> int:
            raise ValueError("bug")

    good = MemorySink()
    async with (
        hub.join("bad", member("c1"), Broken(), None) as broken_sub,
        hub.join("good", member("c2"), good, None),
    ):
        hub.deliver("bad", _event(broken_sub))
        await send(hub, "still here", room="good")
        with caplog.at_level(logging.ERROR):
            await settle()
        assert good.ids() == ["1"]
    assert "fan-out to room bad failed" in caplog.text


def _event(sub: Any) -> Any:
    from realtime.core.ports import Headcount
    from realtime.core.presence import presence_event

    return presence_event("bad", "join", sub.member, Headcount(1, [sub.member]), 3)


async def test_close_all_closes_every_sink_with_the_reason(hub: Hub) -> None:
    sinks = [MemorySink() for _ in range(3)]
    async with (
        hub.join("a", member("c1"), sinks[0], None),
        hub.join("b", member("c2"), sinks[1], None),
        hub.join("b", member("c3"), sinks[2], None),
    ):
        hub.close_all(CloseReason.SHUTDOWN)
        assert [s.closed for s in sinks] == [CloseReason.SHUTDOWN] * 3
        assert not list(hub.subscribers())


async def test_a_write_delay_gathers_a_rooms_events_into_one_write() -> None:
    hub = Hub(
        create_backend("memory", history_size=50, store_url="memory"),
        replay=0,
        history_size=50,
        max_buffer=1 << 20,
        write_delay=0.05,
    )
    await hub.start()
    try:
        sink = MemorySink()
        async with hub.join("r", member("c1"), sink, None):
            await asyncio.sleep(0.1)  # the presence join, written on its own
            before = len(sink.writes)
            for i in range(5):
                await send(hub, f"m{i}")
            await settle()
            assert len(sink.writes) == before  # still gathering
            await asyncio.sleep(0.1)
            assert len(sink.writes) == before + 1
            assert sink.ids() == ["1", "2", "3", "4", "5"]
    finally:
        await hub.close()


async def test_disconnect_closes_one_users_subscribers_with_the_reason(hub: Hub) -> None:
    ana_r, ana_s, bo_r = MemorySink(), MemorySink(), MemorySink()
    async with (
        hub.join("r", member("c1", "ana"), ana_r, None),
        hub.join("s", member("c2", "ana"), ana_s, None),
        hub.join("r", member("c3", "bo"), bo_r, None),
    ):
        count = await hub.disconnect("ana", room="r", reason="banned", reconnect=False)
        assert count == 1
        assert (ana_r.closed, ana_r.detail) == (CloseReason.DISCONNECT, "banned")
        assert ana_s.closed is None and bo_r.closed is None
        await settle()  # the closed one has left presence
        assert await hub.disconnect("ana", room=None, reason="bye", reconnect=True) == 1
        assert (ana_s.closed, ana_s.detail) == (CloseReason.DISCONNECT_RECONNECT, "bye")
        assert bo_r.closed is None
        assert await hub.disconnect("nobody", room=None, reason="x", reconnect=False) == 0
    assert hub.closed_by == {"disconnect": 1, "disconnect_reconnect": 1}


async def test_publish_once_and_pages(hub: Hub) -> None:
    first = await hub.publish_once(Draft("r", "u", "a", None), "k")
    again = await hub.publish_once(Draft("r", "u", "a", None), "k")
    assert first == ("1", False) and again == ("1", True) and hub.published == 1
    for i in range(3):
        await send(hub, f"m{i}")
    page = await hub.page("r", since=None, before="4", limit=2, reverse=True)
    assert [m.text for m in page.messages] == ["m1", "m0"] and page.more
    page = await hub.page("r", since="1", before=None, limit=5, reverse=False)
    assert [m.text for m in page.messages] == ["m0", "m1", "m2"] and not page.more
