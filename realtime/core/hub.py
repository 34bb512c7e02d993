"""Rooms of this process: join with history and presence, publish, disconnect.

The hub is the Room core's entry point for transports. A transport hands it
a :class:`~realtime.core.room.Sink` and gets a subscriber for the life of a
``Hub.join`` block.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ..logs import event as log_event
from .fanout import Fanout
from .ports import Backend, History, Member, Page
from .presence import Roster, by_transport
from .protocol import Draft, Event, Message
from .room import CloseReason, Room, Sink, Subscriber

log = logging.getLogger("realtime.hub")


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
        backend: Backend,
        *,
        replay: int,
        history_size: int,
        max_buffer: int,
        presence_limit: int = 100,
        write_delay: float = 0.0,
        idempotency_window: float = 300.0,
    ) -> None:
        self.backend = backend
        self.fanout = Fanout(write_delay)
        self.idempotency_window = idempotency_window
        self.replay = replay
        self.history_size = history_size
        self.max_buffer = max_buffer
        self.roster = Roster(backend.presence, backend.bus, presence_limit)
        self._rooms: dict[str, Room] = {}
        self._watching: dict[str, asyncio.Future[None]] = {}  # bus.watch still running
        self.dropped_slow = 0
        self.published = 0
        self.closed_by = Counter[str]()  # subscribers the server closed, by reason
        backend.bus.on_control = self._control

    async def start(self) -> None:
        await self.backend.start(self.deliver)

    async def close(self) -> None:
        self.close_all(CloseReason.SHUTDOWN)
        await self.roster.settle(5.0)
        await self.backend.close()

    @property
    def healthy(self) -> bool:
        return self.backend.healthy

    # -- delivery -------------------------------------------------------
    def deliver(self, room: str, event: Event) -> None:
        """Fan an event out to this process's subscribers of ``room``."""
        local = self._rooms.get(room)
        if local is not None and local.queue(event):
            self.fanout.schedule(local)

    @property
    def delivered(self) -> int:
        return self.fanout.delivered

    # -- messages -------------------------------------------------------
    @property
    def ordered_appends(self) -> bool:
        """Do appends started in order get ids in that order, so a sender may
        start the next before the previous one is committed?"""
        return self.backend.log.ordered_appends

    async def publish(self, draft: Draft) -> Message:
        msg = await self.backend.log.append(draft)
        self.published += 1
        return msg

    async def publish_once(self, draft: Draft, key: str) -> tuple[str, bool]:
        """Publish unless ``key`` was used in the room within the idempotency
        window: the id, and True when it is the first publish's."""
        msg_id, duplicate = await self.backend.log.append_once(draft, key, self.idempotency_window)
        if not duplicate:
            self.published += 1
        return msg_id, duplicate

    async def history(self, room: str, since: str | None, limit: int) -> History:
        return await self.backend.log.history(room, since, limit)

    async def page(
        self, room: str, *, since: str | None, before: str | None, limit: int, reverse: bool
    ) -> Page:
        return await self.backend.log.page(
            room, after=since, before=before, limit=limit, newest_first=reverse
        )

    # -- membership -----------------------------------------------------
    @asynccontextmanager
    async def join(
        self,
        room_name: str,
        member: Member,
        sink: Sink,
        since: str | None,
        *,
        presence: bool = True,
    ) -> AsyncIterator[Subscriber]:
        """Subscribe ``sink`` to the room for the life of the block.

        The subscriber is registered first (syncing: live events are held),
        then the history is read and sent, then what arrived meanwhile: no
        gap, no duplicate. With ``presence=False`` the connection reads the
        room without being listed in it (long-polling requests).
        """
        room = await self._room(room_name)
        sub = Subscriber(sink, member, room, self.max_buffer, self._closed)
        try:
            limit = self.replay if since is None else self.history_size
            history = await self.backend.log.history(room_name, since, limit)
            first: list[Event] = []
            if history.gap and since is not None:
                head = history.messages[0].id if history.messages else None
                first.append(gap_event(room_name, since, head))
            first.extend(Event.message(m) for m in history.messages)
            snapshot = await self.roster.join(room_name, member) if presence else None
            # After a gap the resume point means nothing: the floor against
            # repeats comes from the replayed ids alone.
            sub.go_live(first, None if history.gap else since)
            if snapshot is not None:
                sub.offer([snapshot])
            yield sub
        finally:
            sub.detach()
            if not room and self._rooms.get(room_name) is room:
                del self._rooms[room_name]
                self._watching.pop(room_name, None)
                self.backend.bus.unwatch(room_name)
            await self.roster.leave(room_name, member)

    async def _room(self, name: str) -> Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(name)
            self._watching[name] = asyncio.ensure_future(self.backend.bus.watch(name))
        watching = self._watching.get(name)
        if watching is not None:
            # Every joiner waits until the bus watches the room, not only the
            # first: a bus that subscribes per room (Redis Cluster) would miss
            # the presence of those that joined while it subscribed.
            await asyncio.shield(watching)
            if self._watching.get(name) is watching:
                del self._watching[name]
        return room

    def _closed(self, sub: Subscriber) -> None:
        """A subscriber was dropped: leave now, not when its socket is gone."""
        if sub.close_reason is not None:
            self.closed_by[sub.close_reason.name.lower()] += 1
        if sub.close_reason is CloseReason.SLOW:
            self.dropped_slow += 1
            log_event(
                log,
                "dropped",
                logging.WARNING,
                conn=sub.member.conn_id,
                transport=sub.member.transport,
                room=sub.room.name,
                user=sub.member.user,
                reason=f"slow consumer: over {self.max_buffer} unsent bytes",
            )
        self.roster.leave_soon(sub.room.name, sub.member)

    # -- disconnecting users ----------------------------------------------
    async def disconnect(self, user: str, *, room: str | None, reason: str, reconnect: bool) -> int:
        """Close ``user``'s connections (in ``room``, or everywhere) on every
        process; the number of connections presence listed."""
        count = await self.roster.connections_of(user, room)
        message = dict(op="disconnect", user=user, room=room, reason=reason, reconnect=reconnect)
        await self.backend.bus.send_control(message)
        return count

    def _control(self, message: Mapping[str, Any]) -> None:
        if message.get("op") != "disconnect":
            return
        reason = (
            CloseReason.DISCONNECT_RECONNECT if message.get("reconnect") else CloseReason.DISCONNECT
        )
        room = message.get("room")
        rooms = [self._rooms.get(room)] if isinstance(room, str) else list(self._rooms.values())
        for local in rooms:
            for sub in list(local or ()):
                if sub.member.user == message.get("user"):
                    sub.close(reason, str(message.get("reason") or reason.value))

    def close_all(self, reason: CloseReason) -> None:
        for room in list(self._rooms.values()):
            for sub in list(room):
                sub.close(reason)

    # -- what there is --------------------------------------------------
    def subscribers(self) -> Iterator[Subscriber]:
        for room in self._rooms.values():
            yield from room

    def room_count(self) -> int:
        return len(self._rooms)

    async def members(self, room: str) -> list[Member]:
        """The room's members on every process."""
        return await self.roster.presence.members(room)

    async def rooms(self) -> dict[str, Counter[str]]:
        """Every known room (with history or members) -> members per transport."""
        out: dict[str, Counter[str]] = {name: Counter() for name in await self.backend.log.rooms()}
        for name, members in (await self.backend.presence.rooms()).items():
            out[name] = by_transport(members)
        return out
