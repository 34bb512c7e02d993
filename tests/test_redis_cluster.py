"""The Redis backend on a real 3-master Redis Cluster (``redis-cluster://``).

The tests written for one Redis server run here unchanged (``pair`` is two
app instances on the cluster); then what only a cluster has: rooms spread
over the masters with every key of a room in one slot, live delivery only
from the node owning the room, a slot moved while a room is live, and its
master killed mid-stream.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from realtime.backends.redis.clients import Connector
from realtime.backends.redis.keys import channel, members_key, stream_key
from realtime.backends.redis.url import parse_redis_url

from . import test_redis as one_server
from .api_helpers import KEY, call
from .failover import assert_every_ack_delivered_once_in_order, publish_through_failover
from .helpers import post, ws_messages, ws_until
from .redis_cluster import LocalCluster, query, redis_cluster
from .test_redis import Client, MakeInstance, make_instance
from .test_workers import connections, run, wait_healthy, wait_workers

__all__ = ["make_instance", "redis_cluster"]


@pytest.fixture(autouse=True)
def empty_cluster(redis_cluster: LocalCluster) -> Iterator[None]:
    redis_cluster.flush()
    yield


@pytest.fixture
async def pair(redis_cluster: LocalCluster, make_instance: MakeInstance) -> tuple[Client, Client]:
    return await make_instance(redis_cluster.url), await make_instance(redis_cluster.url)


test_two_instances_share_a_room_both_ways_both_transports = (
    one_server.test_two_instances_share_a_room_both_ways_both_transports
)
test_resume_across_instances_no_gap_no_duplicate = (
    one_server.test_resume_across_instances_no_gap_no_duplicate
)
test_presence_counts_members_on_every_instance = (
    one_server.test_presence_counts_members_on_every_instance
)


async def test_rooms_spread_over_masters_each_in_one_slot_delivered_from_its_node(
    redis_cluster: LocalCluster, pair: tuple[Client, Client]
) -> None:
    a, b = pair
    rooms = [f"room{i}" for i in range(12)]
    sockets = [await b.ws_connect(f"/rooms/{room}/ws?user=u") for room in rooms]
    try:
        for ws in sockets:
            await ws_until(ws, "presence")
        for room in rooms:
            await post(a, room, f"hello {room}")
        for room, ws in zip(rooms, sockets, strict=True):
            (got,) = await ws_messages(ws, 1)
            assert got["text"] == f"hello {room}"
        owners = set()
        for room in rooms:
            node = redis_cluster.master_of(stream_key(room))
            owners.add(node.port)
            # The log, the members and the channel of a room: one slot, one node.
            assert redis_cluster.master_of(members_key(room)).port == node.port
            assert redis_cluster.slot(channel(room)) == redis_cluster.slot(stream_key(room))
            assert query(node.port, "EXISTS", stream_key(room), members_key(room)) == 2
            # Sharded pub/sub: b subscribed there; a (no member) did not.
            counts = query(node.port, "PUBSUB", "SHARDNUMSUB", channel(room))
            assert counts == [channel(room), 1]
        assert len(owners) == 3, "twelve rooms all landed on fewer than three masters"
        for port in redis_cluster.master_ports():  # no pattern subscription anywhere
            assert query(port, "PUBSUB", "NUMPAT") == 0
        rooms_listed = await (await a.get("/rooms")).json()
        assert {r["room"] for r in rooms_listed["rooms"]} == set(rooms)
        health = await (await a.get("/healthz")).json()
        assert health["redis"]["mode"] == "cluster"
        assert {int(m.rsplit(":", 1)[1]) for m in health["redis"]["masters"]} == owners
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_room_whose_slot_moves_keeps_delivering_without_a_hole(
    redis_cluster: LocalCluster, pair: tuple[Client, Client]
) -> None:
    a, b = pair
    ws = await b.ws_connect("/rooms/mover/ws?user=u")
    await ws_until(ws, "presence")
    before = [await post(a, "mover", f"m{i}") for i in range(5)]
    source = redis_cluster.master_of(stream_key("mover"))
    target = next(redis_cluster.node(p) for p in redis_cluster.master_ports() if p != source.port)
    redis_cluster.move_slot(stream_key("mover"), target)
    assert redis_cluster.master_of(stream_key("mover")).port == target.port
    after: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(after) < 5:  # the first publishes may meet the old slot map: 503, then fine
        resp = await a.post("/rooms/mover/messages", json={"text": "x", "user": "p"})
        if resp.status == 201:
            after.append(await resp.json())
        assert time.monotonic() < deadline, "publishing did not come back after the move"
        await asyncio.sleep(0.05)
    got = await ws_messages(ws, 10, timeout=10)
    assert [m["id"] for m in got] == [m["id"] for m in before + after]
    # The subscription followed the room to its new node.
    assert query(target.port, "PUBSUB", "SHARDNUMSUB", channel("mover")) == [channel("mover"), 1]
    assert query(source.port, "PUBSUB", "SHARDNUMSUB", channel("mover")) == [channel("mover"), 0]
    await ws.close()


async def test_killing_a_rooms_master_mid_stream_loses_no_acknowledged_message(
    redis_cluster: LocalCluster, make_instance: MakeInstance
) -> None:
    url = redis_cluster.url
    a = await make_instance(url, redis_wait=1, redis_wait_timeout=0.5)
    b = await make_instance(url, redis_wait=1, redis_wait_timeout=0.5)
    room = "crash"
    victim = redis_cluster.master_of(stream_key(room))

    def recover() -> None:
        redis_cluster.wait_failover(victim, stream_key(room))
        redis_cluster.restore()

    out = await publish_through_failover(a, b, room, victim.kill, recover)
    print(
        f"cluster failover: {len(out.acked)} acknowledged, {out.refused} refused, "
        f"publishing resumed {out.resumed_after:.2f}s after the kill"
    )
    assert out.refused > 0, "the kill went unnoticed"
    assert out.resumed_after < 10, f"publishing resumed only after {out.resumed_after:.1f}s"
    assert_every_ack_delivered_once_in_order(out)
    assert redis_cluster.master_of(stream_key(room)).port != victim.port


async def test_the_server_api_works_across_the_cluster(
    redis_cluster: LocalCluster, make_instance: MakeInstance
) -> None:
    """Idempotency keys in the room's slot, pages, and disconnect over the
    control channel's sharded subscription."""
    a = await make_instance(redis_cluster.url, api_key=KEY)
    b = await make_instance(redis_cluster.url, api_key=KEY)
    ws = await b.ws_connect("/rooms/api-room/ws?user=ana")
    await ws_until(ws, "presence")

    async def once(client: Client) -> dict[str, Any]:
        body = {"room": "api-room", "text": "once", "idempotency_key": "k-1"}
        return (await call(client, "POST", "/api/publish", json=body))["results"][0]

    outs = await asyncio.gather(*(once(c) for c in (a, b) * 5))
    assert len({o["id"] for o in outs}) == 1
    assert sum(1 for o in outs if not o.get("duplicate")) == 1
    assert [m["text"] for m in await ws_messages(ws, 1)] == ["once"]
    page = await call(a, "GET", "/api/rooms/api-room/history?reverse=1")
    assert [m["text"] for m in page["messages"]] == ["once"]
    out = await call(a, "POST", "/api/disconnect", json={"user": "ana", "reason": "bye"})
    assert out == {"disconnected": 1}
    msg = await ws.receive(timeout=5)
    while msg.type is aiohttp.WSMsgType.TEXT:
        msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4000, "bye")


async def test_cluster_client_reaches_every_master_and_a_node_subscribes(
    redis_cluster: LocalCluster,
) -> None:
    connector = Connector(parse_redis_url(redis_cluster.url))
    client = connector.commands()
    try:
        owner = redis_cluster.master_of("realtime:{room0}:chan")
        node = connector.node("127.0.0.1", owner.port, timeout=None)
        pubsub = node.pubsub()
        await pubsub.ssubscribe("realtime:{room0}:chan")
        confirm = await pubsub.get_message(timeout=2)
        assert confirm is not None and confirm["type"] == "ssubscribe"
        await client.spublish("realtime:{room0}:chan", "hello")
        got = await pubsub.get_message(timeout=2)
        assert got is not None and (got["type"], got["data"]) == ("smessage", "hello")
        await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await node.aclose()
    finally:
        await client.aclose()
        await connector.aclose()


async def test_workers_share_rooms_over_the_cluster(
    tmp_path: Path, redis_cluster: LocalCluster
) -> None:
    with run(tmp_path, "--workers", "2", "--broker", redis_cluster.url) as server:
        await wait_healthy(server)
        assert len(await wait_workers(server.base, 2)) == 2
        async with connections(server.base, "w") as conns:
            assert len({c.pid for c in conns}) == 2
            for c in conns:
                await ws_until(c.ws, "presence")
            await conns[0].ws.send_json({"text": "to everyone"})
            for c in conns:
                (got,) = await ws_messages(c.ws, 1)
                assert got["text"] == "to everyone"
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=10) == 0


async def test_joins_at_once_each_see_their_own_join_none_refused(
    redis_cluster: LocalCluster, pair: tuple[Client, Client]
) -> None:
    """Fresh rooms joined by many at once: more joins than a process keeps
    connections per node (32) queue instead of failing, and every joiner's
    presence goes out after its process subscribed the room, not only the
    first joiner's."""

    async def join(room: str, i: int) -> Any:
        ws = await pair[i % 2].ws_connect(f"/rooms/{room}/ws?user=u{i}")
        while (await ws_until(ws, "presence", timeout=10))["user"] != f"u{i}":
            pass
        return ws

    sockets = await asyncio.gather(*(join(f"rush{r}", i) for r in range(20) for i in range(6)))
    try:
        rooms = await (await pair[0].get("/rooms")).json()
        totals = {r["room"]: r["total"] for r in rooms["rooms"]}
        assert totals == {f"rush{r}": 6 for r in range(20)}
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
