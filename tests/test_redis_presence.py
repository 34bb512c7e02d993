"""Redis presence against a real redis-server: batched member writes, counts
that follow what Redis holds, a resync racing joins and leaves, a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from realtime.backends.redis.connection import RedisConnection
from realtime.backends.redis.keys import counts_key, members_key
from realtime.backends.redis.presence import RedisPresence
from realtime.core.ports import Member

from .redis_server import RedisServer, redis_server

__all__ = ["redis_server"]


@pytest.fixture
async def presence(redis_server: RedisServer) -> AsyncIterator[RedisPresence]:
    conn = RedisConnection(redis_server.url)
    await conn.wait_reachable()
    p = RedisPresence(conn)
    await p.open()
    try:
        yield p
    finally:
        await p.close()
        await conn.redis.aclose()


def member(i: int) -> Member:
    return Member(f"c{i}", f"u{i}", "ws")


async def state(url: str, room: str, proc: str) -> tuple[int, int]:
    """(this process's count, its member fields) as Redis holds them."""
    r = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        count = int(await r.hget(counts_key(room), proc) or 0)
        fields = [f for f in await r.hkeys(members_key(room)) if f.startswith(proc + "/")]
        return count, len(fields)
    finally:
        await r.aclose()


async def test_a_join_wave_goes_in_a_few_scripts_and_counts_exactly(
    presence: RedisPresence, redis_server: RedisServer
) -> None:
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await r.config_resetstat()
    seen = await asyncio.gather(*(presence.join("w", member(i), 3) for i in range(200)))
    assert max(s.count for s in seen) == 200 and all(len(s.first) == 3 for s in seen[3:])
    scripts = (await r.info("commandstats"))["cmdstat_eval"]["calls"]
    assert scripts < 20  # batched: not one per join
    # A join and the same member's leave in one batch; a repeated join.
    await asyncio.gather(presence.leave("w", member(0), 3), presence.join("w", member(1), 3))
    assert await state(redis_server.url, "w", presence.proc) == (199, 199)
    await asyncio.gather(*(presence.leave("w", member(i), 3) for i in range(1, 200)))
    assert await state(redis_server.url, "w", presence.proc) == (0, 0)
    assert not await r.exists(counts_key("w"), members_key("w"))
    await r.aclose()


async def test_a_resync_racing_joins_and_leaves_leaves_the_count_right(
    presence: RedisPresence, redis_server: RedisServer
) -> None:
    for i in range(10):
        await presence.join("s", member(i), 3)
    # A leave that Redis may not have recorded: the room is resynced.
    presence._stale.add("s")
    presence._resync = True
    await asyncio.gather(
        presence._beat(),
        *(presence.join("s", member(i), 3) for i in range(10, 15)),
        *(presence.leave("s", member(i), 3) for i in range(3)),
    )
    assert await state(redis_server.url, "s", presence.proc) == (12, 12)
    assert not presence._stale and not presence._resync


async def test_after_a_restart_that_lost_everything_the_heartbeat_writes_it_back(
    presence: RedisPresence, redis_server: RedisServer
) -> None:
    for i in range(5):
        await presence.join("b", member(i), 3)
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await r.flushall()  # what an empty restart looks like
    await r.aclose()
    await presence._beat()
    assert await state(redis_server.url, "b", presence.proc) == (5, 5)
    seen = await presence.join("b", member(5), 3)
    assert seen.count == 6


async def test_a_process_that_exits_leaves_nothing_behind_where_a_write_failed(
    redis_server: RedisServer,
) -> None:
    conn = RedisConnection(redis_server.url)
    await conn.wait_reachable()
    p = RedisPresence(conn)
    await p.open()
    r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await p.join("x", member(0), 3)
        await p.join("y", member(1), 3)
        # A leave of room y that Redis may not have recorded, and the process
        # exits before its heartbeat writes the room again.
        await p.writes.write("y", [f"{p.proc}/c9", json.dumps({"proc": p.proc})])
        await p.leave("y", member(1), 3)
        p._stale.add("y")
        assert await state(redis_server.url, "y", p.proc) == (1, 1)
        await p.close()
        for room in ("x", "y"):
            assert await state(redis_server.url, room, p.proc) == (0, 0)
        assert not await r.exists(f"realtime:proc:{p.proc}")
    finally:
        await r.aclose()
        await conn.redis.aclose()
