"""One Redis connection pool per process, and the one place where Redis
errors become :class:`BrokerUnavailable`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ...core.ports import BrokerUnavailable
from .keys import safe_url

log = logging.getLogger("realtime.redis")

COMMAND_TIMEOUT = 2.0  # seconds a command may take before the caller gets 503
CONNECT_TIMEOUT = 1.0
MAX_CONNECTIONS = 32  # per process, besides the pub/sub connection
START_WAIT = 5.0  # seconds start() keeps trying an unreachable Redis

ERRORS = (RedisError, OSError, TimeoutError)


class RedisConnection:
    """The command pool (bounded, no retries) and a client for pub/sub."""

    def __init__(self, url: str) -> None:
        self.url = url
        # No automatic retries: a retried XADD whose reply was lost would
        # store the message twice. Callers get BrokerUnavailable instead.
        # A bounded pool: a join or leave storm queues for a connection
        # (up to COMMAND_TIMEOUT) instead of opening hundreds.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=COMMAND_TIMEOUT,
            decode_responses=True,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self.redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self.pubsub_client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=None,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self.ok = False
        self.closed = False

    @property
    def where(self) -> str:
        return safe_url(self.url)

    @asynccontextmanager
    async def command(self, what: str) -> AsyncIterator[aioredis.Redis]:
        """``async with conn.command("publish") as r: await r.…``: a bounded
        time, and connection trouble raised as BrokerUnavailable."""
        if self.closed:
            raise BrokerUnavailable("broker closed")
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT + 0.5):
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

    async def drop_idle(self) -> None:
        """Idle pooled connections went with the server: drop them so the
        first command after its return does not fail."""
        with contextlib.suppress(*ERRORS):
            await self.redis.connection_pool.disconnect(inuse_connections=False)

    async def close(self) -> None:
        self.closed = True
        await self.redis.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await self.pubsub_client.aclose()  # type: ignore[no-untyped-call,unused-ignore]
