"""One Redis deployment per process (a server, a Sentinel-managed master, or a
Cluster): the command client, pub/sub clients, where the masters are, and the
one place where Redis errors become :class:`BrokerUnavailable`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from ...core.ports import BrokerUnavailable
from .clients import Connector, Timeouts
from .url import Kind, parse_redis_url, safe_url

log = logging.getLogger("realtime.redis")

COMMAND_TIMEOUT = 2.0  # seconds a command may take before the caller gets 503
CONNECT_TIMEOUT = 1.0
MAX_CONNECTIONS = 32  # per process (per node in a cluster), besides pub/sub
START_WAIT = 5.0  # seconds start() keeps trying an unreachable Redis

ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)

Client = aioredis.Redis | RedisCluster


class RedisConnection:
    """The command pool (bounded, no retries) and the clients for pub/sub."""

    def __init__(self, url: str, *, command_timeout: float = COMMAND_TIMEOUT) -> None:
        self.url = url
        self.target = parse_redis_url(url)
        self.command_timeout = command_timeout
        # No automatic retries: a retried XADD whose reply was lost would
        # store the message twice. Callers get BrokerUnavailable instead.
        # A bounded pool: a join or leave storm queues for a connection
        # (up to the command timeout) instead of opening hundreds.
        self.connector = Connector(
            self.target, Timeouts(command_timeout, CONNECT_TIMEOUT, MAX_CONNECTIONS)
        )
        self.redis: Client = self.connector.commands()
        # The cluster client refuses a command when a node's pool is used up
        # instead of waiting: queue here as the blocking pool does elsewhere.
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS) if self.kind == "cluster" else None
        self._pubsub_client: aioredis.Redis | None = None
        self.master: str | None = None  # Sentinel: the master's address, as last named
        self.ok = False
        self.closed = False

    @property
    def kind(self) -> Kind:
        return self.target.kind

    @property
    def sharded(self) -> bool:
        """A cluster: pub/sub is sharded (SPUBLISH) and subscriptions are per node."""
        return self.kind == "cluster"

    @property
    def cluster(self) -> RedisCluster:
        assert isinstance(self.redis, RedisCluster)
        return self.redis

    @property
    def pubsub_client(self) -> aioredis.Redis:
        """The client of the one pub/sub connection (a server or the Sentinel master)."""
        if self._pubsub_client is None:
            self._pubsub_client = self.connector.subscriber()
        return self._pubsub_client

    @property
    def where(self) -> str:
        return safe_url(self.url)

    def describe(self) -> dict[str, Any]:
        """What ``/healthz`` shows: the Sentinel master, or the cluster's masters."""
        if self.kind == "sentinel":
            return {"mode": "sentinel", "service": self.target.service, "master": self.master}
        if self.kind == "cluster":
            with contextlib.suppress(*ERRORS):
                return {"mode": "cluster", "masters": sorted(n.name for n in self._primaries())}
            return {"mode": "cluster", "masters": []}
        return {"mode": "server"}

    def _primaries(self) -> list[ClusterNode]:
        nodes: list[ClusterNode] = self.cluster.get_primaries()
        return nodes

    @asynccontextmanager
    async def command(self, what: str) -> AsyncIterator[Client]:
        """``async with conn.command("publish") as r: await r.…``: a bounded
        time, and connection trouble raised as BrokerUnavailable."""
        if self.closed:
            raise BrokerUnavailable("broker closed")
        try:
            async with asyncio.timeout(self.command_timeout + 0.5):
                if self._slots is None:
                    yield self.redis
                else:
                    async with self._slots:
                        yield self.redis
        except ERRORS as exc:
            self.ok = False
            raise BrokerUnavailable(f"Redis {what} failed: {exc or type(exc).__name__}") from None
        self.ok = True

    async def wait_reachable(self) -> None:
        """Ping until Redis answers, for up to START_WAIT seconds."""
        deadline = time.monotonic() + START_WAIT
        warned = False
        while True:
            try:
                await self.check_master()
                await self.redis.ping()
                self.ok = True
                return
            except ERRORS as exc:
                if time.monotonic() >= deadline:
                    raise BrokerUnavailable(
                        f"Redis at {self.where} is unreachable after {START_WAIT:.0f}s: "
                        f"{exc or type(exc).__name__}"
                    ) from None
                if not warned:
                    log.warning(
                        "Redis at %s unreachable (%s); retrying for up to %.0fs",
                        self.where,
                        exc,
                        START_WAIT,
                    )
                    warned = True
                await asyncio.sleep(0.5)

    async def check_master(self) -> None:
        """Sentinel: ask who the master is now (:attr:`master`)."""
        address = await self.connector.master_address()
        if address is None:
            return
        name = f"{address[0]}:{address[1]}"
        if self.master is not None and name != self.master:
            log.warning("Sentinel names a new master for %s: %s", self.target.service, name)
            await self.drop_idle()
        self.master = name

    async def drop_idle(self) -> None:
        """Idle pooled connections went with the server: drop them so the
        first command after its return does not fail."""
        if isinstance(self.redis, aioredis.Redis):
            with contextlib.suppress(*ERRORS):
                await self.redis.connection_pool.disconnect(inuse_connections=False)

    # -- cluster --------------------------------------------------------
    async def refresh_topology(self) -> None:
        """Ask the cluster again which master serves which slot."""
        await self.cluster.nodes_manager.initialize()

    def owner(self, key: str) -> ClusterNode:
        """The master serving ``key``'s slot, as last known."""
        node = self.cluster.get_node_from_key(key)
        if node is None:
            raise RedisClusterException(f"no node serves {key!r}")
        return node

    def node_client(self, host: str, port: int) -> aioredis.Redis:
        """A client of one cluster node, for a long-lived pub/sub connection there."""
        return self.connector.node(host, port, timeout=None)

    async def close(self) -> None:
        self.closed = True
        await self.redis.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        if self._pubsub_client is not None:
            await self._pubsub_client.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await self.connector.aclose()
