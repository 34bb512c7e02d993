"""Message logs: the in-memory deque and durable SQLite, behind one interface."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from realtime.backends.local import LocalBus, StoredLog
from realtime.backends.memory import MemoryLog
from realtime.backends.sqlite import SqliteLog
from realtime.core.protocol import Draft, Event
from realtime.workers import free_port

from .conftest import MakeClient
from .helpers import SseReader, post, realtime_process, ws_json, ws_messages
from .test_main import wait_healthy

delivered: list[tuple[str, Event]] = []


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: Any, tmp_path: Path) -> Any:
    bus = LocalBus()
    delivered.clear()
    await bus.start(lambda room, event: delivered.append((room, event)))
    s: StoredLog = (
        MemoryLog(5, bus) if request.param == "memory" else SqliteLog(tmp_path / "h.db", 5, bus)
    )
    await s.open()
    yield s
    await s.close()


async def test_ids_order_eviction_and_gap(store: StoredLog) -> None:
    msgs = await asyncio.gather(*(store.append(Draft("r", "u", f"m{i}", None)) for i in range(8)))
    assert [m.id for m in msgs] == [str(i) for i in range(1, 9)]
    assert [event.id for _, event in delivered] == [m.id for m in msgs]  # stored, then delivered
    await store.append(Draft("other", "u", "x", "c"))
    latest = await store.history("r", None, 3)
    assert [m.text for m in latest.messages] == ["m5", "m6", "m7"] and not latest.gap
    after = await store.history("r", "5", 100)
    assert [m.id for m in after.messages] == ["6", "7", "8"] and not after.gap
    evicted = await store.history("r", "1", 100)
    assert evicted.gap and [m.id for m in evicted.messages] == ["4", "5", "6", "7", "8"]
    unknown = await store.history("r", "50", 2)
    assert unknown.gap
    assert sorted(await store.rooms()) == ["other", "r"]
    other = (await store.history("other", None, 5)).messages
    assert other[0].client_id == "c" and other[0].room == "other"


async def test_sqlite_keeps_history_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    first = SqliteLog(path, 100, LocalBus())
    await first.open()
    for i in range(3):
        await first.append(Draft("r", "u", f"m{i}", None))
    await first.close()
    second = SqliteLog(path, 100, LocalBus())
    await second.open()
    assert (await second.append(Draft("r", "u", "m3", None))).id == "4"
    assert [m.text for m in (await second.history("r", "1", 10)).messages] == ["m1", "m2", "m3"]
    await second.close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def start_server(port: int, store: str) -> subprocess.Popen[bytes]:
    return realtime_process(port, store, "--rate-burst", "1000")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
async def test_restart_keeps_every_acknowledged_message_once(tmp_path: Path, stop: int) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    store = f"sqlite:{tmp_path / 'data' / 'realtime.db'}"
    acked: list[str] = []
    proc = start_server(port, store)
    try:
        await wait_healthy(base, proc)
        async with aiohttp.ClientSession() as session:

            async def post(i: int) -> None:
                async with session.post(
                    f"{base}/rooms/r/messages", json={"text": f"m{i}", "user": "u"}
                ) as resp:
                    if resp.status == 201:
                        acked.append((await resp.json())["id"])

            await asyncio.gather(*(post(i) for i in range(60)))
            assert len(acked) == 60
            proc.send_signal(stop)
            await asyncio.to_thread(proc.wait, 10)
        proc = start_server(port, store)
        await wait_healthy(base, proc)
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{base}/rooms/r/ws?since=20")
            resumed = await ws_messages(ws, 40)
            reader = SseReader(
                await session.get(f"{base}/rooms/r/events", headers={"Last-Event-ID": "0"})
            )
            via_sse = await reader.messages(60)
            async with session.post(f"{base}/rooms/r/messages", json={"text": "after"}) as resp:
                assert (await resp.json())["id"] == "61"
            await ws.close()
    finally:
        proc.kill()
        proc.wait()
    assert [m["id"] for m in resumed] == [str(i) for i in range(21, 61)]
    assert sorted(int(m["id"]) for m in via_sse) == sorted(int(i) for i in acked)
    assert [m["id"] for m in via_sse] == [str(i) for i in range(1, 61)]


async def test_a_sender_that_hangs_up_mid_write_is_still_delivered(
    make_client: Any, tmp_path: Path
) -> None:
    """Stored means broadcast: a POST whose client leaves while the SQLite
    write is in flight must still reach the room's subscribers."""
    client = await make_client(store=f"sqlite:{tmp_path / 'h.db'}", replay=0)
    body = b'{"text":"bye","user":"u"}'
    request = (
        f"POST /rooms/r/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    async with client.ws_connect("/rooms/r/ws") as ws:
        for _ in range(40):
            _, writer = await asyncio.open_connection(client.host, client.port)
            writer.write(request)
            await writer.drain()
            writer.transport.abort()  # gone before the answer
        await asyncio.sleep(0.5)
        history = (await (await client.get("/rooms/r/messages?limit=1000")).json())["messages"]
        assert history, "no POST got far enough to be stored"
        delivered = await ws_messages(ws, len(history), timeout=5)
    assert [m["id"] for m in delivered] == [m["id"] for m in history]


# -- --max-rooms: what a process holds in memory per room is bounded ---------


async def rooms_listed(client: Any) -> list[str]:
    return [r["room"] for r in (await (await client.get("/rooms?limit=1000")).json())["rooms"]]


async def test_memory_store_evicts_the_least_recently_used_room(make_client: MakeClient) -> None:
    client = await make_client(store="memory", max_rooms=3)
    for name in ["a", "b", "c"]:
        await post(client, name, f"in {name}")
    await post(client, "a", "a again")  # "b" is now the least recently used
    await post(client, "d", "in d")
    assert sorted(await rooms_listed(client)) == ["a", "c", "d"]
    # The evicted room's history is gone: a resume into it is told so.
    async with client.ws_connect("/rooms/b/ws?since=1") as ws:
        assert (await ws_json(ws))["type"] == "gap"
    held = await (await client.get("/rooms/a/messages?since=0")).json()
    assert [m["text"] for m in held["messages"]] == ["in a", "a again"]


async def test_sqlite_store_keeps_evicted_rooms_on_disk(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(store=f"sqlite:{tmp_path / 'r.db'}", max_rooms=2)
    for name in ["a", "b", "c", "d"]:
        await post(client, name, f"in {name}")
    # "a" left the in-memory bound long ago: its ids go on from the disk.
    assert (await post(client, "a", "back"))["id"] == "2"
    assert sorted(await rooms_listed(client)) == ["a", "b", "c", "d"]
    held = await (await client.get("/rooms/b/messages?since=0")).json()
    assert [m["text"] for m in held["messages"]] == ["in b"]


async def test_sqlite_ids_stay_unique_when_a_room_comes_back_under_load(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(store=f"sqlite:{tmp_path / 'r.db'}", max_rooms=1)
    sends = [post(client, f"r{i % 3}", f"m{i}") for i in range(60)]
    ids: dict[str, list[int]] = {}
    for sent in await asyncio.gather(*sends):
        ids.setdefault(sent["room"], []).append(int(sent["id"]))
    for got in ids.values():
        assert sorted(got) == list(range(1, len(got) + 1))


async def test_memory_store_never_forgets_a_room_someone_follows(
    make_client: MakeClient,
) -> None:
    client = await make_client(store="memory", max_rooms=2)
    await post(client, "followed", "first")
    async with client.ws_connect("/rooms/followed/ws?user=f") as ws:
        assert (await ws_json(ws))["text"] == "first"
        for name in ["b", "c", "d"]:
            await post(client, name, f"in {name}")
        # Ids go on where the follower is, so it drops nothing as a repeat.
        assert (await post(client, "followed", "second"))["id"] == "2"
        assert (await ws_messages(ws, 1))[0]["text"] == "second"
    assert "followed" in await rooms_listed(client)
