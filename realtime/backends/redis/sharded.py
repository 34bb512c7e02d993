"""Live delivery in a Redis Cluster: sharded pub/sub on the master owning each room.

A room's keys and its channel ``realtime:{room}:chan`` share one hash slot,
so the append script ``SPUBLISH``es on the master that stored the message,
and only processes that ``SSUBSCRIBE``d there receive it: no node forwards
traffic for rooms it does not own.

Each process keeps one pub/sub connection per master that owns a watched
room (a :class:`NodeListener`). When one breaks (the master died) or Redis
says a channel moved (``sunsubscribe`` pushed after a slot migration or a
failover), the rooms on it are homeless: the bus refreshes the slot map,
subscribes them on their current owner, then reads from each room's stream
what it missed. Pub/sub messages that arrive while a room catches up are
held and released after it, so each message is delivered once, in id order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from ...core.ports import BrokerUnavailable, Deliver
from ...core.protocol import Event
from ...tasks import stop_task
from .bus import LISTEN_DEAD, LISTEN_IDLE, StreamBus
from .connection import COMMAND_TIMEOUT, ERRORS, START_WAIT, RedisConnection
from .keys import CONTROL_ROOM, channel, room_of
from .log import RedisLog

log = logging.getLogger("realtime.redis")

BACKOFF_MAX = 1.0
_background: set[asyncio.Task[None]] = set()  # fire-and-forget unsubscribes and closes


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


class NodeListener:
    """One pub/sub connection to one master, and the rooms subscribed there."""

    def __init__(
        self,
        name: str,
        client: aioredis.Redis,
        on_message: Callable[[str, str], None],
        on_lost: Callable[[NodeListener, set[str], str], None],
    ) -> None:
        self.name = name
        self.client = client
        self.pubsub: PubSub = client.pubsub()
        self.rooms: set[str] = set()  # confirmed
        self._on_message = on_message
        self._on_lost = on_lost
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self.dead = False

    async def subscribe(self, room: str) -> None:
        """SSUBSCRIBE and wait for Redis to confirm it."""
        chan = channel(room)
        done = asyncio.get_running_loop().create_future()
        self._confirm[chan] = done
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await self.pubsub.ssubscribe(chan)
                if self._task is None:
                    self._task = asyncio.get_running_loop().create_task(
                        self._read(), name=f"redis-node-{self.name}"
                    )
                await done
        finally:
            self._confirm.pop(chan, None)
        self.rooms.add(room)

    def drop(self, room: str) -> None:
        """Stop listening for ``room`` here (best effort: the node may be gone)."""
        self.rooms.discard(room)
        if not self.dead and self._task is not None:
            _spawn(self._unsubscribe(channel(room)))

    async def _unsubscribe(self, chan: str) -> None:
        with contextlib.suppress(*ERRORS):
            await self.pubsub.sunsubscribe(chan)

    async def close(self) -> None:
        self.dead = True
        await stop_task(self._task)
        with contextlib.suppress(*ERRORS):
            await self.pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        with contextlib.suppress(*ERRORS):
            await self.client.aclose()

    async def _read(self) -> None:
        seen = time.monotonic()
        pinged = False
        try:
            while True:
                msg = await self.pubsub.get_message(timeout=LISTEN_IDLE)
                now = time.monotonic()
                if msg is None:
                    if now - seen > LISTEN_DEAD:
                        raise TimeoutError("no answer on the pub/sub connection")
                    if not pinged:
                        await self.pubsub.ping()
                        pinged = True
                    continue
                seen, pinged = now, False
                kind, chan = msg["type"], str(msg["channel"])
                if kind == "smessage":
                    self._on_message(chan, str(msg["data"]))
                elif kind == "ssubscribe":
                    fut = self._confirm.get(chan)
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                elif kind == "sunsubscribe":
                    room = room_of(chan)
                    if room in self.rooms:  # not asked for: the slot moved away
                        self.rooms.discard(room)
                        self._on_lost(self, {room}, "slot moved")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the connection is gone: hand the rooms back
            self.dead = True
            for fut in self._confirm.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(str(exc) or type(exc).__name__))
            lost, self.rooms = self.rooms, set()
            self._on_lost(self, lost, str(exc) or type(exc).__name__)


class ShardedBus(StreamBus):
    """The bus for ``redis-cluster://``: per-room subscriptions on the owning master."""

    def __init__(self, conn: RedisConnection, log_: RedisLog) -> None:
        super().__init__(conn, log_)
        self._listeners: dict[str, NodeListener] = {}
        self._home: dict[str, str] = {}  # room -> node name subscribed there
        self._stale = False  # the slot map needs a refresh
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self, deliver: Deliver) -> None:
        await super().start(deliver)
        await self.conn.wait_reachable()
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="redis-bus")
        await self.watch(CONTROL_ROOM)  # subscribed where it lives, like a room, for good
        log.info("Redis broker at %s", self.conn.where)

    async def close(self) -> None:
        if self.conn.closed:
            return
        await stop_task(self._task)
        for listener in list(self._listeners.values()):
            await listener.close()
        self._listeners.clear()
        await self.conn.close()

    @property
    def healthy(self) -> bool:
        return self.conn.ok and all(r in self._home for r in self._cursors)

    async def watch(self, room: str) -> None:
        await super().watch(room)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await self._reconcile()
        except (*ERRORS, BrokerUnavailable):  # never raises: the supervisor goes on trying
            self._stale = True
            self._wake.set()

    def unwatch(self, room: str) -> None:
        super().unwatch(room)
        name = self._home.pop(room, None)
        listener = self._listeners.get(name or "")
        if listener is not None:
            listener.drop(room)
            if not listener.rooms:
                del self._listeners[listener.name]
                _spawn(listener.close())

    async def publish(self, room: str, event: Event) -> None:
        async with self.conn.command("broadcast") as r:
            await r.spublish(channel(room), "p" + event.json)

    # -- keeping every watched room subscribed where it lives ----------
    def _lost(self, listener: NodeListener, rooms: set[str], why: str) -> None:
        if self._listeners.get(listener.name) is listener and listener.dead:
            del self._listeners[listener.name]
            _spawn(listener.close())
        for room in rooms:
            if self._home.get(room) == listener.name:
                del self._home[room]
                self.hold(room)
        if rooms:
            log.warning("Redis node %s: %d rooms to move (%s)", listener.name, len(rooms), why)
        self._stale = True
        self._wake.set()

    async def _supervise(self) -> None:
        delay = 0.05
        while True:
            if all(r in self._home for r in self._cursors) and not self.behind:
                self._wake.clear()
                await self._wake.wait()
            try:
                async with asyncio.timeout(START_WAIT):
                    await self._reconcile()
                delay = 0.05
            except (*ERRORS, BrokerUnavailable) as exc:
                self._stale = True
                log.debug("Redis cluster: rooms not settled yet (%s)", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    async def _reconcile(self) -> None:
        """Subscribe every watched room on its owner, then catch the moved ones up."""
        async with self._lock:
            if self._stale:
                await self.conn.refresh_topology()
                self._stale = False
            for room in list(self._cursors):
                node = self.conn.owner(channel(room))
                if self._home.get(room) == node.name:
                    continue
                old = self._listeners.get(self._home.pop(room, ""))
                if old is not None:
                    old.drop(room)
                self.hold(room)
                listener = self._listeners.get(node.name)
                if listener is None or listener.dead:
                    client = self.conn.node_client(node.host, int(node.port))
                    listener = NodeListener(node.name, client, self.on_message, self._lost)
                    self._listeners[node.name] = listener
                await listener.subscribe(room)
                if room in self._cursors:
                    self._home[room] = node.name
                else:  # unwatched meanwhile
                    listener.drop(room)
            for name, listener in list(self._listeners.items()):
                if not listener.rooms:
                    del self._listeners[name]
                    await listener.close()
            await self.catch_up(r for r in self._cursors if r in self._home)
