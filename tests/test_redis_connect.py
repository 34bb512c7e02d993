"""Redis URLs for one server, Sentinel and Cluster, and clients that reach each for real."""

from __future__ import annotations

import asyncio
import time

import pytest

from realtime.redis_connect import Connector, parse_redis_url, safe_url

from .redis_cluster import LocalCluster, redis_cluster
from .redis_sentinel import LocalSentinel, redis_sentinel

__all__ = ["redis_cluster", "redis_sentinel"]


def test_sentinel_url_names_the_sentinels_the_master_and_the_database() -> None:
    t = parse_redis_url(
        "redis-sentinel://ana:s3cret@10.0.0.1:26380,sentinel-b,[::1]:26381/cache?db=2"
    )
    assert t.kind == "sentinel"
    assert t.hosts == (("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381))
    assert (t.service, t.db, t.username, t.password) == ("cache", 2, "ana", "s3cret")
    assert "s3cret" not in t.safe_url and t.safe_url.startswith("redis-sentinel://ana:***@10.0.0.1")


def test_cluster_url_lists_seed_nodes_with_the_default_port() -> None:
    t = parse_redis_url("redis-cluster://n1:7000,n2")
    assert t.kind == "cluster" and t.hosts == (("n1", 7000), ("n2", 6379)) and t.db == 0


def test_plain_redis_urls_are_one_server() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://h:6380/1", "unix:///run/redis.sock"):
        assert parse_redis_url(url).kind == "server"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis-sentinel://h1:26379", "name the master"),
        ("redis-sentinel://h1:26379/a/b", "name the master"),
        ("redis-sentinel://h1:99999/m", "bad port"),
        ("redis-sentinel://h1:x/m", "bad port"),
        ("redis-sentinel:///m", "no host"),
        ("redis-sentinel://h1/m?db=two", "db must be a number"),
        ("redis-sentinel://h1/m?timeout=3", "unknown option 'timeout'"),
        ("redis-cluster://h1:7000/0", "no path"),
        ("redis-cluster://h1:7000?db=1", "db 0 only"),
        ("memcached://h1", "not a Redis URL"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_redis_url(url)


def test_safe_url_hides_only_the_password() -> None:
    assert safe_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert safe_url("redis-cluster://:pw@a:1,b:2") == "redis-cluster://:***@a:1,b:2"
    assert safe_url("redis://h:1/0") == "redis://h:1/0"


async def test_cluster_client_reaches_every_master_and_a_node_subscribes(
    redis_cluster: LocalCluster,
) -> None:
    connector = Connector(parse_redis_url(redis_cluster.url))
    client = connector.commands()
    try:
        rooms = [f"room{i}" for i in range(12)]
        for room in rooms:
            await client.set(f"realtime:{{{room}}}:probe", room)
        owners = {redis_cluster.master_of(f"realtime:{{{room}}}:probe").port for room in rooms}
        assert len(owners) == 3, "twelve rooms all landed on fewer than three masters"
        assert [await client.get(f"realtime:{{{r}}}:probe") for r in rooms] == rooms
        # Sharded pub/sub: subscribe on the node owning the room's slot.
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
