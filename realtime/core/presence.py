"""Presence as rooms see it: join/leave announcements and the member counts.

:class:`Roster` records members in the backend's :class:`Presence` and
announces joins and leaves over the bus. Above ``limit`` members, joins and
leaves are not broadcast (each would cost every member a message: N joins
cost N²); the joiner still gets a snapshot with the count and the first
members. The backend reads no more than ``limit`` members per join or leave,
so a join wave stays linear however big the room.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable

from .ports import BrokerUnavailable, Bus, Headcount, Member, Presence
from .protocol import Event

log = logging.getLogger("realtime.presence")


def presence_event(room: str, kind: str, member: Member, seen: Headcount, limit: int) -> Event:
    """A join/leave with the member list, cut to ``limit`` entries (see ``count``)."""
    return Event(
        "presence",
        {
            "type": "presence",
            "room": room,
            "event": kind,
            "user": member.user,
            "transport": member.transport,
            "count": seen.count,
            "members": [m.to_dict() for m in seen.first[:limit]],
        },
    )


def by_transport(members: Iterable[Member]) -> Counter[str]:
    """Members per transport name."""
    return Counter(m.transport for m in members)


class Roster:
    """Joins and leaves of this process's connections, each left exactly once."""

    def __init__(self, presence: Presence, bus: Bus, limit: int) -> None:
        self.presence = presence
        self.bus = bus
        self.limit = limit
        self._joined: dict[str, str] = {}  # conn_id -> room
        self._leaving: set[asyncio.Task[None]] = set()

    async def join(self, room: str, member: Member) -> Event | None:
        """Record the member and announce it; return the snapshot the joiner
        alone must get (when the room is too big for broadcasts), else None."""
        self._joined[member.conn_id] = room
        seen = await self.presence.join(room, member, self.limit)
        if seen.count > self.limit:
            return presence_event(room, "join", member, seen, self.limit)
        await self._announce(room, "join", member, seen)
        return None

    async def leave(self, room: str, member: Member) -> None:
        """Leave once. The backend's part runs to its end even when the caller
        is cancelled (a client that vanished while it was leaving): a leave
        cut short would list the member, on every process, until this one exits."""
        if self._joined.pop(member.conn_id, None) is not None:
            await asyncio.shield(self._track(room, member))

    def leave_soon(self, room: str, member: Member) -> None:
        """Leave from synchronous code (a subscriber dropped mid-flush)."""
        if self._joined.pop(member.conn_id, None) is not None:
            self._track(room, member)

    def _track(self, room: str, member: Member) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._leave(room, member))
        self._leaving.add(task)
        task.add_done_callback(self._left)
        return task

    def _left(self, task: asyncio.Task[None]) -> None:
        self._leaving.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("presence leave failed", exc_info=exc)

    async def _leave(self, room: str, member: Member) -> None:
        seen = await self.presence.leave(room, member, self.limit)
        if seen.count < self.limit:
            await self._announce(room, "leave", member, seen)

    async def settle(self, seconds: float) -> None:
        """Wait (bounded) for leaves still on their way to the backend."""
        if self._leaving:
            await asyncio.wait(set(self._leaving), timeout=seconds)

    async def connections_of(self, user: str, room: str | None) -> int:
        """How many connections ``user`` has in ``room`` (or anywhere), on every process."""
        if room is not None:
            members = await self.presence.members(room)
        else:
            members = [m for ms in (await self.presence.rooms()).values() for m in ms]
        return sum(1 for m in members if m.user == user)

    async def _announce(self, room: str, kind: str, member: Member, seen: Headcount) -> None:
        try:
            await self.bus.publish(room, presence_event(room, kind, member, seen, self.limit))
        except BrokerUnavailable:
            log.warning("presence %s in %s not sent: broker unavailable", kind, room)
