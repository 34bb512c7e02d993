"""The message log in Redis Streams: an atomic append-and-publish, history reads."""

from __future__ import annotations

import logging
import time
from typing import Any

from ...core.ports import BrokerUnavailable, History, MessageLog, Page
from ...core.protocol import Draft, Message, dumps, parse_id
from .connection import RedisConnection
from .keys import (
    PUBLISH_LUA,
    PUBLISH_ONCE_LUA,
    ROOMS_KEY,
    after,
    channel,
    exclusive,
    once_key,
    stream_key,
    to_message,
    to_messages,
)
from .replicas import ReplicatedAppend

log = logging.getLogger("realtime.redis")


class RedisLog(MessageLog):
    """``wait`` > 0: a message is acknowledged only once that many replicas
    have it (``WAIT``, up to ``wait_timeout`` seconds)."""

    def __init__(
        self,
        conn: RedisConnection,
        history_size: int,
        *,
        wait: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        self.conn = conn
        self.history_size = history_size
        self._publish = conn.redis.register_script(PUBLISH_LUA)
        self._publish_once = conn.redis.register_script(PUBLISH_ONCE_LUA)
        self._replicated = self._replicated_once = None
        if wait > 0:
            self._replicated = ReplicatedAppend(conn, self._publish.sha, wait, wait_timeout)
            self._replicated_once = ReplicatedAppend(
                conn, self._publish_once.sha, wait, wait_timeout, PUBLISH_ONCE_LUA
            )
        # In a cluster the rooms set lives in another slot than the room, so
        # the script cannot add to it: each process adds a room once.
        self._listed: set[str] = set()

    async def append(self, draft: Draft) -> Message:
        body = _body(draft)
        room = draft.room
        keys, args = self._script_input(room, body)
        async with self.conn.command("publish"):
            if self._replicated is not None:
                entry_id = await self._replicated(keys, args)
            else:
                entry_id = await self._publish(keys=keys, args=args)
        await self._list(room)
        return to_message(room, str(entry_id), body)

    async def append_once(self, draft: Draft, key: str, window: float) -> tuple[str, bool]:
        room = draft.room
        keys, args = self._script_input(room, _body(draft))
        keys.insert(2, once_key(room, key))
        args.append(max(1, round(window * 1000)))
        async with self.conn.command("publish"):
            if self._replicated_once is not None:
                entry_id, seen = await self._replicated_once(keys, args)
            else:
                entry_id, seen = await self._publish_once(keys=keys, args=args)
        await self._list(room)
        return str(entry_id), bool(int(seen))

    def _script_input(self, room: str, body: str) -> tuple[list[str], list[str | int]]:
        """KEYS and ARGV of the append scripts."""
        keys = [stream_key(room), channel(room)]
        if not self.conn.sharded:
            keys.append(ROOMS_KEY)
        publish = "SPUBLISH" if self.conn.sharded else "PUBLISH"
        return keys, [self.history_size, body, publish, room]

    async def _list(self, room: str) -> None:
        if self.conn.sharded and room not in self._listed:
            try:
                async with self.conn.command("rooms") as r:
                    await r.sadd(ROOMS_KEY, room)
                self._listed.add(room)
            except BrokerUnavailable as exc:  # stored all the same; listed next time
                log.warning("room %s not added to the room list: %s", room, exc)

    async def history(self, room: str, since: str | None, limit: int) -> History:
        if since is None:
            return History(await self.newest(room, limit))
        point = parse_id(since)
        key = stream_key(room)
        async with self.conn.command("history") as r:
            pipe = r.pipeline(transaction=True)
            pipe.xinfo_stream(key)
            pipe.xrevrange(key, "+", after(f"{point[0]}-{point[1]}"), count=limit + 1)
            info, entries = await pipe.execute(raise_on_error=False)
        if isinstance(entries, Exception):
            raise BrokerUnavailable(f"Redis history failed: {entries}")
        if isinstance(info, Exception):  # no such stream
            return History(gap=point != (0, 0))
        if point > parse_id(info["last-generated-id"]):  # unknown id: Redis lost the stream
            return History(await self.newest(room, limit), gap=True)
        gap = len(entries) > limit or _trimmed_past(info, point)
        return History(to_messages(room, entries[:limit], newest_first=True), gap=gap)

    async def newest(self, room: str, limit: int) -> list[Message]:
        if limit <= 0:
            return []
        async with self.conn.command("history") as r:
            entries = await r.xrevrange(stream_key(room), count=limit)
        return to_messages(room, entries, newest_first=True)

    async def after(self, room: str, start: str, limit: int) -> list[Message]:
        """Messages after ``start``, oldest first (a catch-up read)."""
        async with self.conn.command("catch-up") as r:
            entries = await r.xrange(stream_key(room), after(start), "+", count=limit)
        return to_messages(room, entries)

    async def page(
        self, room: str, *, after: str | None, before: str | None, limit: int, newest_first: bool
    ) -> Page:
        low = exclusive(after) if after is not None else "-"
        high = exclusive(before) if before is not None else "+"
        key = stream_key(room)
        entries: Any
        async with self.conn.command("history") as r:
            if newest_first:
                entries = await r.xrevrange(key, high, low, count=limit + 1)
            else:
                entries = await r.xrange(key, low, high, count=limit + 1)
        return Page(to_messages(room, entries[:limit]), more=len(entries) > limit)

    async def rooms(self) -> list[str]:
        async with self.conn.command("rooms") as r:
            names = await r.smembers(ROOMS_KEY)
        return sorted(str(n) for n in names)


def _trimmed_past(info: dict[str, Any], point: tuple[int, int]) -> bool:
    """Did trimming or deletion remove entries after the resume point, or is
    the point an id of an older stream?"""
    first = info.get("first-entry")
    removed = int(info.get("entries-added", 0)) > int(info.get("length", 0))
    if first is not None and point < parse_id(first[0]) and (point != (0, 0) or removed):
        return True
    deleted = info.get("max-deleted-entry-id")
    return deleted is not None and point < parse_id(str(deleted))


def _body(draft: Draft) -> str:
    """A stream entry's JSON: the message without its room and id."""
    return dumps(
        {
            "user": draft.user,
            "text": draft.text,
            "ts": round(time.time(), 3),
            "client_id": draft.client_id,
        }
    )
