"""The Redis broker: history in Streams, live delivery over pub/sub, shared presence.

Layout in Redis (``{room}`` is a validated room name):

- ``realtime:room:{room}``   a stream, one entry per message; the entry id
  *is* the message id, so every process hands out and resumes from the same
  ids. Trimmed with ``XADD MAXLEN ~ history_size``.
- ``realtime:chan:{room}``   the pub/sub channel of the room. A Lua script
  does ``XADD`` and ``PUBLISH`` in one step, so the pub/sub order is the id
  order on every process. Presence events go over the same channel.
- ``realtime:members:{room}`` a hash ``{process}/{conn_id}`` -> member JSON.
- ``realtime:proc:{process}`` a heartbeat key with a TTL; members of a
  process whose heartbeat expired (a crash) are ignored and removed.
- ``realtime:rooms``          the set of room names ever used.

Each process runs one pattern subscription (``realtime:chan:*``) and hands
what arrives to :meth:`Broker.deliver`, the path the memory broker uses. When
Redis goes away the listener reconnects with backoff, then reads from the
stream what its local rooms missed, so live subscribers see no hole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .broker import Broker, BrokerUnavailable, Deliver, Member, transport_counts
from .protocol import Draft, Event, Message, dumps, parse_id
from .store import History

log = logging.getLogger("realtime.redis")

PREFIX = "realtime:"
ROOMS_KEY = PREFIX + "rooms"
CHANNEL_PATTERN = PREFIX + "chan:*"

COMMAND_TIMEOUT = 2.0  # seconds a command may take before the caller gets 503
CONNECT_TIMEOUT = 1.0
MAX_CONNECTIONS = 32  # per process, besides the pub/sub connection
START_WAIT = 5.0  # seconds start() keeps trying an unreachable Redis
HEARTBEAT_EVERY = 2.0
HEARTBEAT_TTL = 10  # seconds without a heartbeat before a process's members expire
LISTEN_IDLE = 5.0  # ping the pub/sub connection after this much silence
LISTEN_DEAD = 12.0  # and reconnect when nothing at all came back for this long
BACKOFF_MAX = 2.0

# XADD and PUBLISH in one atomic step: pub/sub order == id order.
PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], 'm' .. id .. ' ' .. ARGV[2])
return id
"""

ERRORS = (RedisError, OSError, TimeoutError)

T = TypeVar("T")


def stream_key(room: str) -> str:
    return f"{PREFIX}room:{room}"


def channel(room: str) -> str:
    return f"{PREFIX}chan:{room}"


def members_key(room: str) -> str:
    return f"{PREFIX}members:{room}"


def proc_key(proc: str) -> str:
    return f"{PREFIX}proc:{proc}"


def safe_url(url: str) -> str:
    """The URL without its password, for log lines and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def to_message(room: str, entry_id: str, body: str) -> Message:
    data = json.loads(body)
    return Message(
        room=room,
        id=entry_id,
        user=str(data["user"]),
        text=str(data["text"]),
        ts=float(data["ts"]),
        client_id=None if data.get("client_id") is None else str(data["client_id"]),
    )


def to_messages(room: str, entries: Any, *, newest_first: bool = False) -> list[Message]:
    """Stream entries (``[(id, {"m": json})…]``) as messages, oldest first."""
    items: list[tuple[str, dict[str, str]]] = list(entries or [])
    if newest_first:
        items.reverse()
    return [to_message(room, str(i), str(f["m"])) for i, f in items]


def after(entry_id: str) -> str:
    """The exclusive range start ``(id`` for XRANGE/XREVRANGE."""
    return "(" + entry_id


class RedisBroker(Broker):
    name = "redis"

    def __init__(self, url: str, *, history_size: int) -> None:
        super().__init__()
        self.url = url
        self.history_size = history_size
        self.proc = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
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
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._sub_client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=None,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self._publish = self._redis.register_script(PUBLISH_LUA)
        self._ok = False
        self._closed = False
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Local presence (to re-register after Redis lost it) and, per local
        # room, the last message id delivered here (to skip duplicates and
        # catch up after a pub/sub reconnect).
        self._local: dict[str, dict[str, Member]] = {}
        self._last: dict[str, str] = {}
        self._floor: dict[str, str] = {}
        self._resync = False

    # -- life cycle -----------------------------------------------------
    async def start(self, deliver: Deliver) -> None:
        await super().start(deliver)
        deadline = time.monotonic() + START_WAIT
        warned = False
        while True:
            try:
                await self._redis.ping()
                break
            except ERRORS as exc:
                if time.monotonic() >= deadline:
                    raise BrokerUnavailable(
                        f"Redis at {safe_url(self.url)} is unreachable after {START_WAIT:.0f}s: "
                        f"{exc or type(exc).__name__}"
                    ) from None
                if not warned:
                    log.warning(
                        "Redis at %s unreachable (%s); retrying for up to %.0fs",
                        safe_url(self.url),
                        exc,
                        START_WAIT,
                    )
                    warned = True
                await asyncio.sleep(0.5)
        await self._beat()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="redis-listener"),
            loop.create_task(self._heartbeat(), name="redis-heartbeat"),
        ]
        try:
            async with asyncio.timeout(START_WAIT):
                await self._listening.wait()
        except TimeoutError:
            await self.close()
            raise BrokerUnavailable(
                f"Redis at {safe_url(self.url)}: pub/sub subscription not confirmed"
            ) from None
        log.info("Redis broker at %s, process %s", safe_url(self.url), self.proc)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(*ERRORS):
            async with asyncio.timeout(COMMAND_TIMEOUT):
                pipe = self._redis.pipeline(transaction=False)
                for room, members in self._local.items():
                    if members:
                        pipe.hdel(members_key(room), *members)
                pipe.delete(proc_key(self.proc))
                await pipe.execute()
        self._local.clear()
        await self._redis.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await self._sub_client.aclose()  # type: ignore[no-untyped-call,unused-ignore]

    @property
    def healthy(self) -> bool:
        return self._ok and self._listening.is_set()

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run Redis commands; connection trouble becomes BrokerUnavailable."""
        if self._closed:
            raise BrokerUnavailable("broker closed")
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT + 0.5):
                result = await fn()
        except ERRORS as exc:
            self._ok = False
            raise BrokerUnavailable(f"Redis {what} failed: {exc or type(exc).__name__}") from None
        self._ok = True
        return result

    # -- messages -------------------------------------------------------
    async def publish(self, draft: Draft) -> Message:
        body = dumps(
            {
                "user": draft.user,
                "text": draft.text,
                "ts": round(time.time(), 3),
                "client_id": draft.client_id,
            }
        )

        async def run() -> Any:
            return await self._publish(
                keys=[stream_key(draft.room), ROOMS_KEY],
                args=[self.history_size, body, draft.room, channel(draft.room)],
            )

        entry_id = str(await self._call("publish", run))
        return to_message(draft.room, entry_id, body)

    async def history(self, room: str, since: str | None, limit: int) -> History:
        key = stream_key(room)
        if since is None:
            if limit <= 0:
                return History()
            entries = await self._call("history", lambda: self._redis.xrevrange(key, count=limit))
            return History(to_messages(room, entries, newest_first=True))
        point = parse_id(since)

        async def read() -> list[Any]:
            pipe = self._redis.pipeline(transaction=True)
            pipe.xinfo_stream(key)
            pipe.xrevrange(key, "+", after(f"{point[0]}-{point[1]}"), count=limit + 1)
            out: list[Any] = await pipe.execute(raise_on_error=False)
            return out

        info, entries = await self._call("history", read)
        if isinstance(info, Exception):  # no such stream
            if not isinstance(entries, list):
                raise BrokerUnavailable(f"Redis history failed: {entries}")
            return History(gap=point != (0, 0))
        if isinstance(entries, Exception):
            raise BrokerUnavailable(f"Redis history failed: {entries}")
        newest = parse_id(info["last-generated-id"])
        if point > newest:  # unknown id, e.g. Redis lost the stream
            tail = await self._call("history", lambda: self._redis.xrevrange(key, count=limit))
            return History(to_messages(room, tail, newest_first=True), gap=True)
        gap = len(entries) > limit
        entries = entries[:limit]
        first = info.get("first-entry")
        removed = int(info.get("entries-added", 0)) > int(info.get("length", 0))
        if first is not None and point < parse_id(first[0]) and (point != (0, 0) or removed):
            gap = True  # trimmed past the resume point, or an id of an older stream
        deleted = info.get("max-deleted-entry-id")
        if deleted and point < parse_id(deleted):
            gap = True
        return History(to_messages(room, entries, newest_first=True), gap=gap)

    # -- presence -------------------------------------------------------
    def _field(self, conn_id: str) -> str:
        return f"{self.proc}/{conn_id}"

    def _member_json(self, member: Member) -> str:
        return dumps({"user": member.user, "transport": member.transport, "proc": self.proc})

    async def _live_members(self, rooms: dict[str, dict[str, str]]) -> dict[str, list[Member]]:
        """Members per room from raw hashes, without those of dead processes."""
        parsed: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        procs: set[str] = set()
        for room, raw in rooms.items():
            parsed[room] = []
            for field, value in raw.items():
                try:
                    data = json.loads(value)
                    procs.add(str(data["proc"]))
                except (ValueError, KeyError, TypeError):
                    data = {"proc": ""}
                parsed[room].append((field, data))
        others = sorted(procs - {self.proc})
        alive = {self.proc}
        if others:
            exists = await self._call(
                "presence", lambda: self._redis.mget([proc_key(p) for p in others])
            )
            alive.update(p for p, v in zip(others, exists, strict=True) if v is not None)
        out: dict[str, list[Member]] = {}
        dead: dict[str, list[str]] = {}
        for room, items in parsed.items():
            out[room] = []
            for field, data in items:
                if data.get("proc") in alive:
                    out[room].append(
                        Member(field, str(data.get("user")), str(data.get("transport")))
                    )
                else:
                    dead.setdefault(room, []).append(field)
        if dead:
            with contextlib.suppress(*ERRORS):
                pipe = self._redis.pipeline(transaction=False)
                for room, fields in dead.items():
                    pipe.hdel(members_key(room), *fields)
                await pipe.execute()
        return out

    async def join(self, room: str, member: Member) -> list[Member]:
        self._local.setdefault(room, {})[member.conn_id] = member
        key = members_key(room)

        async def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(key, self._field(member.conn_id), self._member_json(member))
            pipe.sadd(ROOMS_KEY, room)
            pipe.hgetall(key)
            pipe.xrevrange(stream_key(room), count=1)
            out: list[Any] = await pipe.execute()
            return out

        try:
            _, _, raw, newest = await self._call("join", run)
        except BrokerUnavailable:
            self._forget(room, member)
            raise
        if room not in self._last and room not in self._floor:
            self._floor[room] = newest[0][0] if newest else "0-0"
        return (await self._live_members({room: raw}))[room]

    def _forget(self, room: str, member: Member) -> None:
        local = self._local.get(room, {})
        local.pop(member.conn_id, None)
        if not local:
            self._local.pop(room, None)
            self._last.pop(room, None)
            self._floor.pop(room, None)

    async def leave(self, room: str, member: Member) -> list[Member]:
        self._forget(room, member)
        local = [
            Member(self._field(m.conn_id), m.user, m.transport)
            for m in self._local.get(room, {}).values()
        ]
        if self._closed:
            return local
        key = members_key(room)

        async def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=True)
            pipe.hdel(key, self._field(member.conn_id))
            pipe.hgetall(key)
            out: list[Any] = await pipe.execute()
            return out

        try:
            _, raw = await self._call("leave", run)
            return (await self._live_members({room: raw}))[room]
        except BrokerUnavailable as exc:
            # Not fatal: the heartbeat re-registers this process's members
            # once Redis is back, which removes this one.
            self._resync = True
            log.warning("presence leave in %s not recorded: %s", room, exc)
            return local

    async def broadcast(self, room: str, event: Event) -> None:
        await self._call("broadcast", lambda: self._redis.publish(channel(room), "p" + event.json))

    async def rooms(self) -> dict[str, dict[str, int]]:
        raw_names = await self._call("rooms", lambda: self._redis.smembers(ROOMS_KEY))
        names = sorted(str(n) for n in raw_names)

        async def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(members_key(name))
            out: list[Any] = await pipe.execute()
            return out

        raws = await self._call("rooms", run) if names else []
        members = await self._live_members(dict(zip(names, raws, strict=True)))
        out: dict[str, dict[str, int]] = {}
        for name in names:
            out[name] = transport_counts(members[name])
        return out

    # -- heartbeat ------------------------------------------------------
    async def _beat(self) -> None:
        """Refresh this process's heartbeat; re-register members if Redis lost them."""
        previous = await self._call(
            "heartbeat",
            lambda: self._redis.set(proc_key(self.proc), "1", ex=HEARTBEAT_TTL, get=True),
        )
        if previous is None or self._resync:
            await self._call("presence resync", self._register_all)
            self._resync = False

    async def _register_all(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for room in self._local:
            pipe.hgetall(members_key(room))
        raws: list[dict[str, str]] = await pipe.execute() if self._local else []
        pipe = self._redis.pipeline(transaction=True)
        mine = self.proc + "/"
        for (room, members), raw in zip(list(self._local.items()), raws, strict=False):
            key = members_key(room)
            wanted: dict[Any, Any] = {
                self._field(c): self._member_json(m) for c, m in members.items()
            }
            stale = [f for f in raw if f.startswith(mine) and f not in wanted]
            if stale:
                pipe.hdel(key, *stale)
            if wanted:
                pipe.hset(key, mapping=wanted)
                pipe.sadd(ROOMS_KEY, room)
        await pipe.execute()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            was_ok = self._ok
            try:
                await self._beat()
                if not was_ok:
                    log.info("Redis at %s reachable again", safe_url(self.url))
            except BrokerUnavailable as exc:
                self._resync = True
                if was_ok:
                    log.warning("Redis heartbeat failed: %s", exc)

    # -- pub/sub listener -----------------------------------------------
    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._sub_client.pubsub()
            try:
                await self._subscribe(pubsub)
                delay = 0.1
                await self._catch_up()
                self._listening.set()
                await self._read(pubsub)
            except (*ERRORS, BrokerUnavailable) as exc:
                if self._listening.is_set():
                    log.warning("Redis pub/sub lost (%s); reconnecting", exc or type(exc).__name__)
                    # Idle pooled connections went with the server: drop them
                    # so the first command after its return does not fail.
                    with contextlib.suppress(*ERRORS):
                        await self._redis.connection_pool.disconnect(inuse_connections=False)
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
        seen = time.monotonic()
        pinged = False
        while True:
            # Every reply counts as a sign of life, the answer to our PING
            # included (redis-py 8 with decode_responses parses it oddly).
            msg = await pubsub.get_message(timeout=LISTEN_IDLE)
            now = time.monotonic()
            if msg is None:
                if now - seen > LISTEN_DEAD:
                    raise TimeoutError("no answer on the pub/sub connection")
                if not pinged:
                    await pubsub.ping()
                    pinged = True
                continue
            seen, pinged = now, False
            if msg["type"] == "pmessage":
                try:
                    self._on_message(str(msg["channel"]), str(msg["data"]))
                except Exception:  # a delivery bug must not stop the listener
                    log.exception("delivery of an event on %s failed", msg["channel"])

    def _on_message(self, chan: str, data: str) -> None:
        room = chan.removeprefix(PREFIX + "chan:")
        kind, body = data[:1], data[1:]
        try:
            if kind == "m":
                entry_id, _, payload = body.partition(" ")
                self._deliver_message(to_message(room, entry_id, payload))
            elif kind == "p":
                payload = json.loads(body)
                self.deliver(room, Event(str(payload.get("type", "presence")), payload))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event on %s", chan)

    def _deliver_message(self, msg: Message) -> None:
        if msg.room in self._local:
            last = self._last.get(msg.room)
            if last is not None and parse_id(msg.id) <= parse_id(last):
                return  # already delivered by a catch-up read
            self._last[msg.room] = msg.id
        self.deliver(msg.room, Event.message(msg))

    def _range(self, key: str, start: str) -> Callable[[], Awaitable[Any]]:
        return lambda: self._redis.xrange(key, after(start), "+", count=self.history_size)

    async def _catch_up(self) -> None:
        """After a (re)subscription: what local rooms missed while it was down."""
        for room in list(self._local):
            start = self._last.get(room) or self._floor.get(room)
            if start is None:
                continue
            key = stream_key(room)
            entries = await self._call("catch-up", self._range(key, start))
            missed = to_messages(room, entries)
            if missed:
                log.info("room %s: %d messages caught up after reconnecting", room, len(missed))
            for msg in missed:
                self._deliver_message(msg)
