"""The in-process broker: a store, local presence, direct delivery."""

from __future__ import annotations

import asyncio

from .broker import Broker, BrokerUnavailable, Deliver, Member, transport_counts
from .protocol import Draft, Event, Message
from .store import History, Store, StoreUnavailable


class MemoryBroker(Broker):
    name = "memory"

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self._members: dict[str, dict[str, Member]] = {}

    async def start(self, deliver: Deliver) -> None:
        await super().start(deliver)
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    async def publish(self, draft: Draft) -> Message:
        # Shielded: once a message is handed to the store it is stored, so it
        # must be delivered too, even if the sender's handler is cancelled
        # (its client went away) while the write is in flight.
        return await asyncio.shield(asyncio.ensure_future(self._store_and_deliver(draft)))

    async def _store_and_deliver(self, draft: Draft) -> Message:
        try:
            msg = await self.store.append(draft)
        except StoreUnavailable as exc:
            raise BrokerUnavailable(str(exc)) from exc
        self.deliver(draft.room, Event.message(msg))
        return msg

    async def history(self, room: str, since: str | None, limit: int) -> History:
        try:
            return await self.store.read(room, since, limit)
        except StoreUnavailable as exc:
            raise BrokerUnavailable(str(exc)) from exc

    async def join(self, room: str, member: Member) -> list[Member]:
        self._members.setdefault(room, {})[member.conn_id] = member
        return list(self._members[room].values())

    async def leave(self, room: str, member: Member) -> list[Member]:
        members = self._members.get(room, {})
        members.pop(member.conn_id, None)
        if not members:
            self._members.pop(room, None)
        return list(members.values())

    async def broadcast(self, room: str, event: Event) -> None:
        self.deliver(room, event)

    async def rooms(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for room in self.store.rooms():
            out[room] = {"ws": 0, "sse": 0}
        for room, members in self._members.items():
            out[room] = transport_counts(members.values())
        return out
