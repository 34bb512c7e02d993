"""Rooms of this process: join/leave with presence, publish, flushing.

The hub is the Room core's entry point for transports. It imports no aiohttp:
a transport hands it a :class:`~realtime.room.Sink` and gets a subscriber.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from .broker import Broker, BrokerUnavailable, Member
from .logs import event
from .protocol import Draft, Event, Message
from .room import CloseReason, Room, Sink, Subscriber, SubState

log = logging.getLogger("realtime.hub")


def presence_event(
    room: str, kind: str, member: Member, members: list[Member], limit: int
) -> Event:
    """A join/leave with the member list, cut to ``limit`` entries (see ``count``)."""
    return Event(
        "presence",
        {
            "type": "presence",
            "room": room,
            "event": kind,
            "user": member.user,
            "transport": member.transport,
            "count": len(members),
            "members": [m.to_dict() for m in members[:limit]],
        },
    )


def gap_event(room: str, since: str, first: str | None) -> Event:
    payload: dict[str, Any] = {
        "type": "gap",
        "room": room,
        "since": since,
        "first_id": first,
        "detail": f"messages after id {since} are no longer held; "
        + (f"resuming from id {first}" if first else "nothing is held"),
    }
    return Event("gap", payload)


class Hub:
    def __init__(
        self,
        broker: Broker,
        *,
        replay: int,
        history_size: int,
        max_buffer: int,
        presence_limit: int = 100,
    ) -> None:
        self.broker = broker
        self.replay = replay
        self.history_size = history_size
        self.max_buffer = max_buffer
        # Above this many members, joins and leaves are not broadcast (each
        # would cost every member a message: N joins cost N^2); the joiner
        # still gets a snapshot with the count and the first members.
        self.presence_limit = presence_limit
        self._rooms: dict[str, Room] = {}
        self._dirty: list[Room] = []
        self._flush_scheduled = False
        self.dropped_slow = 0
        self.published = 0
        self.delivered = 0
        # Called once per flush pass with the seconds from the first event's
        # arrival to the last write, and the number of deliveries.
        self.on_fanout: Callable[[float, int], None] | None = None
        self._pass_started = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.broker.start(self.deliver)

    async def close(self) -> None:
        self.close_all(CloseReason.SHUTDOWN)
        if self._tasks:  # presence leaves still on their way to the broker
            await asyncio.wait(set(self._tasks), timeout=5)
        await self.broker.close()

    # -- delivery -------------------------------------------------------
    def deliver(self, room: str, event: Event) -> None:
        """Fan an event out to this process's subscribers of ``room``."""
        local = self._rooms.get(room)
        if local is None:
            return
        local.pending.append(event)
        if len(local.pending) == 1:
            self._dirty.append(local)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._pass_started = time.perf_counter()
                asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Once per loop pass: every room with queued events writes them."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        count = 0
        for room in dirty:
            try:
                count += room.flush()
            except Exception:  # one broken room must not silence the others
                room.pending.clear()
                log.exception("fan-out to room %s failed", room.name)
        self.delivered += count
        if self.on_fanout is not None and count:
            self.on_fanout(time.perf_counter() - self._pass_started, count)

    # -- publishing -----------------------------------------------------
    async def publish(self, draft: Draft) -> Message:
        msg = await self.broker.publish(draft)
        self.published += 1
        return msg

    # -- membership -----------------------------------------------------
    @asynccontextmanager
    async def join(
        self, room_name: str, member: Member, sink: Sink, since: str | None
    ) -> AsyncIterator[Subscriber]:
        room = self._rooms.get(room_name)
        if room is None:
            room = self._rooms[room_name] = Room(room_name)
        sub = Subscriber(sink, member, room, self.max_buffer, self._closed)
        room.add(sub)
        try:
            limit = self.replay if since is None else self.history_size
            history = await self.broker.history(room_name, since, limit)
            first: list[Event] = []
            if history.gap and since is not None:
                head = history.messages[0].id if history.messages else None
                first.append(gap_event(room_name, since, head))
            first.extend(Event.message(m) for m in history.messages)
            sub.left = False  # from here on, the finally must leave (joined or not)
            members = await self.broker.join(room_name, member)
            # After a gap the resume point means nothing: the floor against
            # repeats comes from the replayed ids alone.
            sub.go_live(first, None if history.gap else since)
            if len(members) > self.presence_limit:
                sub.offer([presence_event(room_name, "join", member, members, self.presence_limit)])
            else:
                await self._announce(room_name, "join", member, members)
            yield sub
        finally:
            if sub.state is not SubState.CLOSED:
                sub.state = SubState.CLOSED
                room.remove(sub)
            if not room.subscribers and self._rooms.get(room_name) is room:
                del self._rooms[room_name]
            await self._leave(sub)

    def _closed(self, sub: Subscriber) -> None:
        """A subscriber was dropped: leave now, not when its socket is gone."""
        if sub.close_reason is CloseReason.SLOW:
            self.dropped_slow += 1
            event(
                log,
                "dropped",
                logging.WARNING,
                conn=sub.member.conn_id,
                transport=sub.member.transport,
                room=sub.room.name,
                user=sub.member.user,
                reason=f"slow consumer: over {self.max_buffer} unsent bytes",
            )
        task = asyncio.get_running_loop().create_task(self._leave(sub))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _leave(self, sub: Subscriber) -> None:
        if sub.left:
            return
        sub.left = True
        room = sub.room.name
        members = await self.broker.leave(room, sub.member)
        if len(members) < self.presence_limit:
            await self._announce(room, "leave", sub.member, members)

    async def _announce(self, room: str, kind: str, member: Member, members: list[Member]) -> None:
        try:
            event = presence_event(room, kind, member, members, self.presence_limit)
            await self.broker.broadcast(room, event)
        except BrokerUnavailable:
            log.warning("presence %s in %s not sent: broker unavailable", kind, room)

    def close_all(self, reason: CloseReason) -> None:
        for room in list(self._rooms.values()):
            for sub in list(room.subscribers):
                sub.close(reason)

    def subscribers(self) -> Iterator[Subscriber]:
        for room in self._rooms.values():
            yield from room.subscribers

    def room_count(self) -> int:
        return len(self._rooms)

    async def rooms(self) -> dict[str, dict[str, int]]:
        return await self.broker.rooms()
