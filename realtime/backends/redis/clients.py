"""The redis-py clients for one :class:`RedisTarget`.

Clients never retry a command on a connection error by themselves: a
retried ``XADD`` whose reply was lost would store a message twice. Callers
turn such errors into "unavailable" and decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from .url import RedisTarget


class SentinelBlockingPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel pool that waits for a free connection instead of opening more."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    command: float = 2.0  # seconds a command may take
    connect: float = 1.0
    max_connections: int = 32  # per process (per node in a cluster)


class Connector:
    """Creates the clients for one target: commands, and pub/sub connections."""

    def __init__(self, target: RedisTarget, timeouts: Timeouts = Timeouts()) -> None:
        self.target = target
        self.timeouts = timeouts
        self.sentinel: Sentinel | None = None
        if target.kind == "sentinel":
            self.sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(target.hosts),
                sentinel_kwargs={
                    "socket_timeout": timeouts.command,
                    "socket_connect_timeout": timeouts.connect,
                    "retry": Retry(NoBackoff(), 0),
                },
            )

    def _common(self) -> dict[str, Any]:
        return {
            "decode_responses": True,
            "socket_connect_timeout": self.timeouts.connect,
            "retry": Retry(NoBackoff(), 0),
        }

    def commands(self) -> aioredis.Redis | RedisCluster:
        """The client for ordinary commands, with a bounded pool."""
        t, to = self.target, self.timeouts
        if t.kind == "cluster":
            return RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in t.hosts],
                username=t.username,
                password=t.password,
                max_connections=to.max_connections,
                socket_timeout=to.command,
                **self._common(),
            )
        if self.sentinel is not None:
            client: aioredis.Redis = self.sentinel.master_for(
                t.service,
                connection_pool_class=SentinelBlockingPool,
                max_connections=to.max_connections,
                timeout=to.command,
                socket_timeout=to.command,
                db=t.db,
                username=t.username,
                password=t.password,
                **self._common(),
            )
            return client
        pool = BlockingConnectionPool.from_url(
            t.url,
            max_connections=to.max_connections,
            timeout=to.command,
            socket_timeout=to.command,
            **self._common(),
        )
        return aioredis.Redis.from_pool(pool)

    def subscriber(self) -> aioredis.Redis:
        """A client for one long-lived pub/sub connection (server or Sentinel master)."""
        t = self.target
        if t.kind == "cluster":
            raise TypeError("a cluster subscribes per node: use node()")
        if self.sentinel is not None:
            client: aioredis.Redis = self.sentinel.master_for(
                t.service,
                socket_timeout=None,
                db=t.db,
                username=t.username,
                password=t.password,
                **self._common(),
            )
            return client
        return aioredis.Redis.from_url(t.url, socket_timeout=None, **self._common())

    def node(self, host: str, port: int, *, timeout: float | None) -> aioredis.Redis:
        """A plain client of one cluster node (pub/sub there, or pinned commands)."""
        return aioredis.Redis(
            host=host,
            port=port,
            username=self.target.username,
            password=self.target.password,
            socket_timeout=timeout,
            max_connections=self.timeouts.max_connections,
            **self._common(),
        )

    async def master_address(self) -> tuple[str, int] | None:
        """Sentinel: the master's address as the sentinels name it now."""
        if self.sentinel is None:
            return None
        host, port = await self.sentinel.discover_master(self.target.service)
        return str(host), int(port)

    async def aclose(self) -> None:
        if self.sentinel is not None:
            await self.sentinel.aclose()
