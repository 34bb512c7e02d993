"""The Redis backend on a real Sentinel setup (``redis-sentinel://``).

The tests written for one Redis server run here unchanged (``pair`` is two
app instances on the master the sentinels name); then the master is killed
mid-stream and the instances follow the failover.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from realtime.backends.redis.clients import Connector
from realtime.backends.redis.url import parse_redis_url

from . import test_redis as one_server
from .failover import assert_every_ack_delivered_once_in_order, publish_through_failover
from .redis_cluster import query
from .redis_sentinel import LocalSentinel, redis_sentinel
from .test_redis import Client, MakeInstance, make_instance

__all__ = ["make_instance", "redis_sentinel"]


@pytest.fixture(autouse=True)
def empty_master(redis_sentinel: LocalSentinel) -> Iterator[None]:
    query(redis_sentinel.master().port, "FLUSHALL")
    yield


@pytest.fixture
async def pair(redis_sentinel: LocalSentinel, make_instance: MakeInstance) -> tuple[Client, Client]:
    return await make_instance(redis_sentinel.url), await make_instance(redis_sentinel.url)


test_two_instances_share_a_room_both_ways_both_transports = (
    one_server.test_two_instances_share_a_room_both_ways_both_transports
)
test_resume_across_instances_no_gap_no_duplicate = (
    one_server.test_resume_across_instances_no_gap_no_duplicate
)
test_presence_counts_members_on_every_instance = (
    one_server.test_presence_counts_members_on_every_instance
)


async def test_killing_the_master_mid_stream_loses_no_acknowledged_message(
    redis_sentinel: LocalSentinel, make_instance: MakeInstance
) -> None:
    a = await make_instance(redis_sentinel.url, redis_wait=1, redis_wait_timeout=0.5)
    b = await make_instance(redis_sentinel.url, redis_wait=1, redis_wait_timeout=0.5)
    victim = redis_sentinel.master()
    health = await (await a.get("/healthz")).json()
    assert health["redis"] == {
        "mode": "sentinel",
        "service": "rt",
        "master": f"127.0.0.1:{victim.port}",
    }

    def recover() -> None:
        redis_sentinel.wait_failover(victim)
        redis_sentinel.restore()

    out = await publish_through_failover(a, b, "crash", victim.kill, recover)
    print(
        f"sentinel failover: {len(out.acked)} acknowledged, {out.refused} refused, "
        f"publishing resumed {out.resumed_after:.2f}s after the kill"
    )
    assert out.refused > 0, "the kill went unnoticed"
    assert out.resumed_after < 10, f"publishing resumed only after {out.resumed_after:.1f}s"
    assert_every_ack_delivered_once_in_order(out)
    # the first sentinel to answer may still be catching up with the others
    redis_sentinel.wait_failover(victim)
    new = redis_sentinel.master()
    assert new.port != victim.port
    for client in (a, b):  # /healthz names the new master
        health = await (await client.get("/healthz")).json()
        assert health["redis"]["master"] == f"127.0.0.1:{new.port}"


async def test_sentinel_client_follows_the_master_through_a_failover(
    redis_sentinel: LocalSentinel,
) -> None:
    connector = Connector(parse_redis_url(redis_sentinel.url))
    client = connector.commands()
    old = redis_sentinel.master()
    try:
        assert await connector.master_address() == ("127.0.0.1", old.port)
        await client.set("before", "1")
        old.kill()
        started = time.monotonic()
        while True:  # what a caller sees: failures, then the new master
            try:
                await client.set("after", "1")
                break
            except Exception:
                assert time.monotonic() - started < 10, "no master within 10 s"
                await asyncio.sleep(0.2)
        new = redis_sentinel.master()
        assert new.port != old.port
        assert await connector.master_address() == ("127.0.0.1", new.port)
        assert await client.get("before") == "1"  # the replica had it
    finally:
        await client.aclose()
        await connector.aclose()
        redis_sentinel.restore()
