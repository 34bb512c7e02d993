"""Live delivery over Redis pub/sub, and catching up after a reconnect.

For every room with local subscribers a :class:`Cursor` records the newest
message id delivered here: a repeat is skipped, and when pub/sub comes back
after an outage (or, in a cluster, a room moves to another node) the bus
reads from the stream what the room missed. While a room catches up, what
pub/sub brings for it is held and released after the read, so every
message is delivered once, in id order (:class:`StreamBus`).

On one server or a Sentinel-managed master, each process runs one pattern
subscription (``realtime:{*}:chan``) and hands what arrives to
:meth:`Bus.deliver`, the path the memory backend uses (:class:`RedisBus`).
With Sentinel it also asks the sentinels every few seconds who the master
is, and moves its subscription when that changes. The cluster's bus is in
:mod:`.sharded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import PubSub

from ...core.ports import BrokerUnavailable, Bus, Deliver
from ...core.protocol import Event, Message, dumps, parse_id
from ...tasks import stop_task
from .connection import COMMAND_TIMEOUT, ERRORS, START_WAIT, RedisConnection
from .keys import CHANNEL_PATTERN, CONTROL_ROOM, channel, room_of, to_message
from .log import RedisLog

log = logging.getLogger("realtime.redis")

LISTEN_IDLE = 5.0  # ping the pub/sub connection after this much silence
LISTEN_DEAD = 12.0  # and reconnect when nothing at all came back for this long
MASTER_CHECK = 2.0  # Sentinel: seconds between asking who the master is
BACKOFF_MAX = 2.0


@dataclass(slots=True)
class Cursor:
    """Where a watched room stands: the newest id delivered here (``last``),
    or, before any, the newest id in the stream when watching began; and
    while it catches up, the pub/sub messages held until it has."""

    start: str | None
    last: str | None = None
    held: list[Message] | None = None

    def resume_from(self) -> str | None:
        return self.last or self.start


class StreamBus(Bus):
    """Cursors, de-duplication and catch-up, shared by both Redis buses."""

    def __init__(self, conn: RedisConnection, log_: RedisLog) -> None:
        super().__init__()
        self.conn = conn
        self.log = log_
        self._cursors: dict[str, Cursor] = {}

    async def watch(self, room: str) -> None:
        if room in self._cursors:
            return
        cursor = self._cursors[room] = Cursor(None)
        with contextlib.suppress(BrokerUnavailable):  # then no catch-up before a first message
            newest = await self.log.newest(room, 1)
            cursor.start = cursor.start or (newest[0].id if newest else "0-0")

    def unwatch(self, room: str) -> None:
        self._cursors.pop(room, None)

    def hold(self, room: str) -> None:
        """Hold pub/sub messages for ``room`` until :meth:`catch_up` has read the stream."""
        cursor = self._cursors.get(room)
        if cursor is not None and cursor.held is None:
            cursor.held = []

    @property
    def behind(self) -> bool:
        return any(c.held is not None for c in self._cursors.values())

    async def catch_up(self, rooms: Iterable[str]) -> None:
        """Deliver what held rooms missed, then what was held; raises
        BrokerUnavailable (the rooms not done stay held, to try again)."""
        for room in list(rooms):
            cursor = self._cursors.get(room)
            if cursor is None or cursor.held is None:
                continue
            start = cursor.resume_from()
            missed = (
                [] if start is None else await self.log.after(room, start, self.log.history_size)
            )
            if missed:
                log.info("room %s: %d messages caught up", room, len(missed))
            held, cursor.held = cursor.held, None
            for msg in [*missed, *held]:
                self._deliver_message(msg)

    async def send_control(self, message: Mapping[str, Any]) -> None:
        async with self.conn.command("control") as r:
            chan, data = channel(CONTROL_ROOM), "c" + dumps(message)
            await (r.spublish(chan, data) if self.conn.sharded else r.publish(chan, data))

    def on_message(self, chan: str, data: str) -> None:
        """One pub/sub message: ``m<id> <json>`` (stored), ``p<json>``
        (presence) or, on the control channel, ``c<json>``."""
        room = room_of(chan)
        kind, body = data[:1], data[1:]
        try:
            if kind == "c" and room == CONTROL_ROOM:
                message = json.loads(body)
                if isinstance(message, dict):
                    self.control(message)
            elif kind == "m":
                entry_id, _, payload = body.partition(" ")
                self._deliver_message(to_message(room, entry_id, payload))
            elif kind == "p":
                payload = json.loads(body)
                self.deliver(room, Event(str(payload.get("type", "presence")), payload))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event on %s", chan)
        except Exception:  # a delivery bug must not stop the listener
            log.exception("delivery of an event on %s failed", chan)

    def _deliver_message(self, msg: Message) -> None:
        cursor = self._cursors.get(msg.room)
        if cursor is not None:
            if cursor.held is not None:
                cursor.held.append(msg)
                return
            if cursor.last is not None and parse_id(msg.id) <= parse_id(cursor.last):
                return  # already delivered by a catch-up read
            cursor.last = msg.id
        self.deliver(msg.room, Event.message(msg))


class RedisBus(StreamBus):
    """One pattern subscription per process (a server, or the Sentinel master)."""

    def __init__(self, conn: RedisConnection, log_: RedisLog) -> None:
        super().__init__(conn, log_)
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- life cycle -----------------------------------------------------
    async def start(self, deliver: Deliver) -> None:
        await super().start(deliver)
        await self.conn.wait_reachable()
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="redis-listener")
        try:
            async with asyncio.timeout(START_WAIT):
                await self._listening.wait()
        except TimeoutError:
            await self.close()
            raise BrokerUnavailable(
                f"Redis at {self.conn.where}: pub/sub subscription not confirmed"
            ) from None
        log.info("Redis broker at %s", self.conn.where)

    async def close(self) -> None:
        if self.conn.closed:
            return
        await stop_task(self._task)
        await self.conn.close()

    @property
    def healthy(self) -> bool:
        return self.conn.ok and self._listening.is_set()

    async def publish(self, room: str, event: Event) -> None:
        async with self.conn.command("broadcast") as r:
            await r.publish(channel(room), "p" + event.json)

    # -- the listener ---------------------------------------------------
    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self.conn.pubsub_client.pubsub()
            try:
                for room in self._cursors:
                    self.hold(room)
                await self._subscribe(pubsub)
                if self.conn.kind == "sentinel":  # the master this connection found
                    self.conn.master = _address(pubsub)
                delay = 0.1
                await self.catch_up(list(self._cursors))
                self._listening.set()
                await self._read(pubsub)
            except (*ERRORS, BrokerUnavailable) as exc:
                if self._listening.is_set():
                    log.warning("Redis pub/sub lost (%s); reconnecting", exc or type(exc).__name__)
                    await self.conn.drop_idle()
                self._listening.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
            finally:
                with contextlib.suppress(*ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]

    async def _subscribe(self, pubsub: PubSub) -> None:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            await pubsub.psubscribe(CHANNEL_PATTERN)
            while True:  # the confirmation, before anything relies on it
                msg = await pubsub.get_message(timeout=COMMAND_TIMEOUT)
                if msg is not None and msg["type"] == "psubscribe":
                    return

    async def _read(self, pubsub: PubSub) -> None:
        seen = checked = time.monotonic()
        pinged = False
        sentinel = self.conn.kind == "sentinel"
        while True:
            # Every reply counts as a sign of life, the answer to our PING
            # included (redis-py 8 with decode_responses parses it oddly).
            wait = MASTER_CHECK if sentinel else LISTEN_IDLE
            msg = await pubsub.get_message(timeout=wait)
            now = time.monotonic()
            if sentinel and now - checked >= MASTER_CHECK:
                checked = now
                with contextlib.suppress(*ERRORS):  # sentinels away: keep what works
                    await self.conn.check_master()
                if self.conn.master != _address(pubsub):  # a failover: follow it
                    raise ConnectionError(f"the master moved to {self.conn.master}")
            if msg is None:
                if now - seen > LISTEN_DEAD:
                    raise TimeoutError("no answer on the pub/sub connection")
                if not pinged and now - seen > LISTEN_IDLE:
                    await pubsub.ping()
                    pinged = True
                continue
            seen, pinged = now, False
            if msg["type"] == "pmessage":
                self.on_message(str(msg["channel"]), str(msg["data"]))


def _address(pubsub: PubSub) -> str | None:
    conn = pubsub.connection
    return None if conn is None else f"{getattr(conn, 'host', '')}:{getattr(conn, 'port', '')}"
