"""The Redis broker against a real redis-server: two app instances share rooms."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from realtime import Settings, create_app
from realtime.backends import create_backend
from realtime.backends.redis.keys import counts_key, members_key
from realtime.core.ports import BrokerUnavailable
from realtime.core.protocol import parse_id
from realtime.workers import free_port

from .helpers import SseReader, post, ws_json, ws_messages, ws_until
from .redis_server import RedisServer, durable_redis, redis_server

__all__ = ["durable_redis", "redis_server"]

Client = TestClient[Any, Any]
MakeInstance = Callable[..., Awaitable[Client]]


@pytest.fixture
def make_instance(aiohttp_client: Any) -> MakeInstance:
    """``await make_instance(url, …)``: a client of a fresh server on that Redis."""

    async def factory(url: str, **overrides: Any) -> Client:
        overrides.setdefault("store", "memory")
        overrides.setdefault("rate_limit", "100000/s")  # these tests publish in bursts
        overrides.setdefault("rate_burst", 100000)
        app = create_app(Settings(broker=url, **overrides))
        return await aiohttp_client(app)  # type: ignore[no-any-return]

    return factory


@pytest.fixture
async def pair(redis_server: RedisServer, make_instance: MakeInstance) -> tuple[Client, Client]:
    return await make_instance(redis_server.url), await make_instance(redis_server.url)


async def test_two_instances_share_a_room_both_ways_both_transports(
    pair: tuple[Client, Client],
) -> None:
    a, b = pair
    ws_a = await a.ws_connect("/rooms/r/ws?user=wa")
    ws_b = await b.ws_connect("/rooms/r/ws?user=wb")
    sse_a = SseReader(await a.get("/rooms/r/events?user=sa"))
    sse_b = SseReader(await b.get("/rooms/r/events?user=sb"))
    try:
        for reader in (sse_a, sse_b):
            await reader.until("presence")
        await ws_until(ws_a, "presence")
        await ws_until(ws_b, "presence")

        async def send_ws(ws: Any, tag: str) -> None:
            for i in range(15):
                await ws.send_json({"text": f"{tag}{i}", "client_id": f"{tag}{i}"})

        async def send_post(client: Client, tag: str) -> None:
            for i in range(15):
                await post(client, "r", f"{tag}{i}")

        await asyncio.gather(
            send_ws(ws_a, "wsA"), send_ws(ws_b, "wsB"), send_post(a, "pA"), send_post(b, "pB")
        )
        seen = [
            await ws_messages(ws_a, 60, timeout=10),
            await ws_messages(ws_b, 60, timeout=10),
            await sse_a.messages(60, timeout=10),
            await sse_b.messages(60, timeout=10),
        ]
    finally:
        await ws_a.close()
        await ws_b.close()
        sse_a.resp.close()
        sse_b.resp.close()
    orders = [[(m["id"], m["text"]) for m in got] for got in seen]
    assert orders[0] == orders[1] == orders[2] == orders[3]
    ids = [parse_id(m_id) for m_id, _ in orders[0]]
    assert ids == sorted(ids) and len(set(ids)) == 60
    texts = {t for _, t in orders[0]}
    assert texts == {f"{tag}{i}" for tag in ("wsA", "wsB", "pA", "pB") for i in range(15)}
    # Per sender, the order of sending is kept.
    for tag in ("wsA", "wsB", "pA", "pB"):
        mine = [t for _, t in orders[0] if t.startswith(tag) and t[len(tag) :].isdigit()]
        assert mine == [f"{tag}{i}" for i in range(15)]
    # Stream ids are what clients see: "<ms>-<seq>".
    assert all("-" in m_id for m_id, _ in orders[0])


async def test_resume_across_instances_no_gap_no_duplicate(pair: tuple[Client, Client]) -> None:
    a, b = pair
    sent = [await post(a, "r", f"m{i}") for i in range(6)]
    async with a.ws_connect("/rooms/r/ws?user=re") as ws:
        got = await ws_messages(ws, 6)
        assert [m["id"] for m in got] == [m["id"] for m in sent]
    resume_at = sent[2]["id"]
    more = [await post(b, "r", f"n{i}") for i in range(4)]
    expected = [m["id"] for m in sent[3:] + more]
    # WebSocket on the other instance, since=<id from the first one>.
    async with b.ws_connect(f"/rooms/r/ws?user=re&since={resume_at}") as ws:
        first = await ws_json(ws)
        assert first["type"] == "message", first  # no gap notice
        got = [first, *await ws_messages(ws, len(expected) - 1)]
        assert [m["id"] for m in got] == expected
        live = await post(a, "r", "live")
        nxt = await ws_until(ws, "message")
        assert nxt["id"] == live["id"]
    # SSE on the other instance with Last-Event-ID.
    resp = await b.get("/rooms/r/events?user=sse", headers={"Last-Event-ID": resume_at})
    reader = SseReader(resp)
    try:
        events = []
        while len([e for e in events if e.event == "message"]) < len(expected) + 1:
            events.append(await reader.next())
        kinds = [e.event for e in events]
        assert "gap" not in kinds
        ids = [e.id for e in events if e.event == "message"]
        assert ids == [*expected, live["id"]]
    finally:
        resp.close()
    # History over HTTP agrees.
    resp2 = await b.get(f"/rooms/r/messages?since={resume_at}&limit=100")
    body = await resp2.json()
    assert body["gap"] is False
    assert [m["id"] for m in body["messages"]] == [*expected, live["id"]]


async def test_presence_counts_members_on_every_instance(pair: tuple[Client, Client]) -> None:
    a, b = pair
    ws = await a.ws_connect("/rooms/p/ws?user=ana")
    await ws_until(ws, "presence")
    sse = SseReader(await b.get("/rooms/p/events?user=bo"))
    try:
        joined = await sse.until("presence")
        assert joined.data["event"] == "join" and joined.data["user"] == "bo"
        assert sorted(m["user"] for m in joined.data["members"]) == ["ana", "bo"]
        # ana, on the other instance, sees bo join with both members listed.
        seen = await ws_until(ws, "presence")
        assert seen["user"] == "bo" and len(seen["members"]) == 2
        for client in (a, b):
            rooms = await (await client.get("/rooms")).json()
            row = next(r for r in rooms["rooms"] if r["room"] == "p")
            assert row["members"] == {"ws": 1, "sse": 1} and row["total"] == 2
        await ws.close()
        left = await sse.until("presence")
        assert left.data["event"] == "leave" and left.data["user"] == "ana"
        assert [m["user"] for m in left.data["members"]] == ["bo"]
        rooms = await (await a.get("/rooms")).json()
        row = next(r for r in rooms["rooms"] if r["room"] == "p")
        assert row["members"] == {"ws": 0, "sse": 1}
    finally:
        await ws.close()
        sse.resp.close()


async def test_members_of_a_dead_process_are_ignored_and_removed(
    redis_server: RedisServer, make_instance: MakeInstance
) -> None:
    a = await make_instance(redis_server.url)
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        # A member left behind by a process whose heartbeat key has expired.
        ghost = json.dumps({"user": "ghost", "transport": "ws", "proc": "gone:1:abc"})
        await r.hset(members_key("p"), "gone:1:abc/x1", ghost)
        await r.hset(counts_key("p"), "gone:1:abc", 1)
        await r.sadd("realtime:rooms", "p")
        async with a.ws_connect("/rooms/p/ws?user=ana") as ws:
            joined = await ws_until(ws, "presence")
            assert [m["user"] for m in joined["members"]] == ["ana"]
            rooms = await (await a.get("/rooms")).json()
            assert rooms["rooms"] == [{"room": "p", "members": {"ws": 1, "sse": 0}, "total": 1}]
        assert not await r.hexists(members_key("p"), "gone:1:abc/x1")
        assert not await r.hexists(counts_key("p"), "gone:1:abc")
    finally:
        await r.aclose()


async def test_a_room_above_the_limit_is_counted_on_every_instance_without_reading_it_whole(
    redis_server: RedisServer, make_instance: MakeInstance
) -> None:
    a = await make_instance(redis_server.url, presence_limit=3)
    b = await make_instance(redis_server.url, presence_limit=3)
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    # A crashed process left 50 members and its count in the room, and a
    # live one (its heartbeat is fresh) has 20,000 members there.
    ghost, far = "gone:2:abc", "far:3:abc"
    await r.set(f"realtime:proc:{far}", "1", ex=60)
    for proc, n in ((ghost, 50), (far, 20_000)):
        entry = json.dumps({"user": "x", "transport": "ws", "proc": proc})
        await r.hset(members_key("big"), mapping={f"{proc}/c{i}": entry for i in range(n)})
        await r.hset(counts_key("big"), proc, n)
    conns = []
    try:
        for i in range(8):
            sent_before = (await r.info("stats"))["total_net_output_bytes"]
            conns.append(await (a, b)[i % 2].ws_connect(f"/rooms/big/ws?user=u{i}"))
            joined = await ws_until(conns[-1], "presence")
            # Each join read the counts (a field per process) and the limit
            # of members, not the 20,000 (about 1.6 MB).
            assert (await r.info("stats"))["total_net_output_bytes"] - sent_before < 20_000
            assert joined["count"] == 20_000 + i + 1 and len(joined["members"]) == 3
        counts = await r.hgetall(counts_key("big"))
        assert counts == {far: "20000", **{p: "4" for p in counts if p != far}}
        assert len(counts) == 3  # the crashed process's count is gone...
        assert await r.hlen(members_key("big")) == 20_008  # ...and its members
    finally:
        for ws in conns:
            await ws.close()
    try:
        for _ in range(500):
            if await r.hlen(counts_key("big")) == 1:
                break
            await asyncio.sleep(0.01)
        assert await r.hgetall(counts_key("big")) == {far: "20000"}
        assert await r.hlen(members_key("big")) == 20_000
    finally:
        await r.aclose()


async def test_resume_past_trimmed_history_or_unknown_id_says_gap(
    redis_server: RedisServer, make_instance: MakeInstance
) -> None:
    a = await make_instance(redis_server.url, history_size=5, replay=5)
    first = await post(a, "g", "m0")
    for i in range(1, 250):  # MAXLEN ~ trims whole stream nodes (100 entries)
        last = await post(a, "g", f"m{i}")
    async with a.ws_connect(f"/rooms/g/ws?since={first['id']}") as ws:
        gap = await ws_json(ws)
        assert gap["type"] == "gap" and gap["since"] == first["id"]
        got = await ws_messages(ws, 5)
        assert got[-1]["id"] == last["id"] and len({m["id"] for m in got}) == 5
    ahead = f"{parse_id(last['id'])[0] + 10_000}-0"
    async with a.ws_connect(f"/rooms/g/ws?since={ahead}") as ws:
        assert (await ws_json(ws))["type"] == "gap"
    async with a.ws_connect("/rooms/never-used/ws?since=5-0") as ws:
        assert (await ws_json(ws))["type"] == "gap"


async def test_unreachable_redis_at_start_is_a_clear_error() -> None:

    backend = create_backend(f"redis://127.0.0.1:{free_port()}/0", history_size=10)
    with pytest.raises(BrokerUnavailable, match="unreachable"):
        await backend.start(lambda room, event: None)
    await backend.close()


async def test_redis_wait_without_enough_replicas_answers_503_and_says_so(
    redis_server: RedisServer, make_instance: MakeInstance
) -> None:
    a = await make_instance(redis_server.url, redis_wait=1, redis_wait_timeout=0.2)
    resp = await a.post("/rooms/w/messages", json={"text": "hi", "user": "u"})
    assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    body = await resp.json()
    assert body["code"] == "unavailable"
    assert "confirmed by 0 of 1 replicas" in body["detail"], body
    # The master has it (the 503 promised nothing either way): history shows it once.
    history = await (await a.get("/rooms/w/messages?since=0")).json()
    assert [m["text"] for m in history["messages"]] == ["hi"]


async def test_redis_restart_while_publishing_loses_nothing_acknowledged(
    durable_redis: RedisServer, make_instance: MakeInstance
) -> None:
    a = await make_instance(durable_redis.url)
    b = await make_instance(durable_redis.url)
    start = await post(a, "x", "before")
    live = await b.ws_connect("/rooms/x/ws?user=live")
    await ws_until(live, "message")  # the replay of "before"
    sender = await a.ws_connect("/rooms/x/ws?user=sender")
    acked: list[str] = [start["id"]]
    refused = 0
    phase = "up"
    stop = asyncio.Event()
    enough = asyncio.Event()
    count_back = 0

    async def publisher() -> None:
        nonlocal refused
        i = 0
        while not stop.is_set():
            resp = await a.post("/rooms/x/messages", json={"text": f"m{i}", "user": "p"})
            if resp.status == 201:
                acked.append((await resp.json())["id"])
                if phase == "back" and len(acked) >= count_back + 20:
                    enough.set()
            else:
                assert resp.status == 503, await resp.text()
                assert resp.headers.get("Retry-After") == "1"
                refused += 1
            i += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(publisher())
    try:
        await asyncio.sleep(0.5)
        durable_redis.kill()
        phase = "down"
        await asyncio.sleep(1.0)
        assert refused > 0
        # While Redis is down: health says so, and a WebSocket send gets an error frame.
        health = await a.get("/healthz")
        assert health.status == 503 and (await health.json())["broker_ok"] is False
        await sender.send_json({"text": "while down"})
        err = await ws_until(sender, "error", timeout=6)
        assert err["code"] == "unavailable"
        durable_redis.start()
        phase = "back"
        count_back = len(acked)
        async with asyncio.timeout(15):
            await enough.wait()
    finally:
        stop.set()
        await task
        await sender.close()
    assert phase == "back"
    final = await post(b, "x", "after")
    acked.append(final["id"])
    # The subscriber that stayed connected on the other instance saw every
    # acknowledged message exactly once, in id order.
    got: list[str] = []
    async with asyncio.timeout(15):
        while not got or got[-1] != final["id"]:
            data = await ws_json(live, timeout=15)
            if data["type"] == "message":
                got.append(data["id"])
    await live.close()
    assert len(got) == len(set(got)) and got == sorted(got, key=parse_id)
    assert set(acked) - {start["id"]} <= set(got)
    # A client resuming from the first id gets every acknowledged one once.
    async with b.ws_connect(f"/rooms/x/ws?user=re&since={start['id']}") as ws:
        resumed: list[str] = []
        async with asyncio.timeout(15):
            while not resumed or resumed[-1] != final["id"]:
                data = await ws_json(ws)
                assert data["type"] != "gap", data
                if data["type"] == "message":
                    resumed.append(data["id"])
    assert len(resumed) == len(set(resumed)) and resumed == sorted(resumed, key=parse_id)
    assert set(acked) - {start["id"]} <= set(resumed)
    health = await a.get("/healthz")
    assert health.status == 200
