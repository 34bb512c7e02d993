"""What one process needs when it is the whole deployment: a bus that
delivers in place, presence in a dict, and the store-then-deliver step that
the memory and SQLite logs share."""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Mapping
from itertools import islice
from typing import Any

from ..core.ports import Bus, Headcount, Member, MessageLog, Presence
from ..core.protocol import Draft, Event, Message
from .once import Once, OnceKeys


class LocalBus(Bus):
    def __init__(self) -> None:
        super().__init__()
        self.watched: set[str] = set()  # rooms with subscribers in this process

    async def watch(self, room: str) -> None:
        self.watched.add(room)

    def unwatch(self, room: str) -> None:
        self.watched.discard(room)

    async def publish(self, room: str, event: Event) -> None:
        self.deliver(room, event)

    async def send_control(self, message: Mapping[str, Any]) -> None:
        self.control(message)


class LocalPresence(Presence):
    def __init__(self) -> None:
        self._members: dict[str, dict[str, Member]] = {}

    async def join(self, room: str, member: Member, limit: int) -> Headcount:
        members = self._members.setdefault(room, {})
        members[member.conn_id] = member
        return Headcount(len(members), list(islice(members.values(), limit)))

    async def leave(self, room: str, member: Member, limit: int) -> Headcount:
        members = self._members.get(room, {})
        members.pop(member.conn_id, None)
        if not members:
            self._members.pop(room, None)
        if len(members) >= limit:
            return Headcount(len(members))
        return Headcount(len(members), list(members.values()))

    async def rooms(self) -> dict[str, list[Member]]:
        return {room: list(members.values()) for room, members in self._members.items()}

    async def members(self, room: str) -> list[Member]:
        return list(self._members.get(room, {}).values())


class StoredLog(MessageLog):
    """A log in this process: store the message, then hand it to the bus.
    ``store`` assigns the id before its first await."""

    ordered_appends = True

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.keys = OnceKeys()

    @abstractmethod
    async def store(self, draft: Draft, once: Once | None = None) -> Message:
        """Assign the id and keep the message (and the idempotency key, where
        the log is durable); raise BrokerUnavailable."""

    async def append(self, draft: Draft) -> Message:
        # Shielded: once a message is handed to the store it is stored, so it
        # must be delivered too, even if the sender's handler is cancelled
        # (its client went away) while the write is in flight.
        return await asyncio.shield(asyncio.ensure_future(self._store_and_deliver(draft)))

    async def _store_and_deliver(self, draft: Draft, once: Once | None = None) -> Message:
        msg = await self.store(draft, once)
        self.bus.deliver(draft.room, Event.message(msg))
        return msg

    async def append_once(self, draft: Draft, key: str, window: float) -> tuple[str, bool]:
        async def store(expires: float) -> str:
            return (await self._store_and_deliver(draft, Once(key, expires))).id

        # Shielded for the same reason as append, and so that the key is
        # settled (retries answered) whatever happens to the first caller.
        once = self.keys.once((draft.room, key), window, store)
        return await asyncio.shield(asyncio.ensure_future(once))
