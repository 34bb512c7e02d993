"""History in memory: the last ``history_size`` messages of each of the
``max_rooms`` rooms used last (a store or a read counts as a use)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Container

from ..core.ports import Bus, History, Page
from ..core.protocol import Draft, Message, parse_id
from .local import StoredLog
from .once import Once


class _RoomLog:
    __slots__ = ("evicted", "messages", "next_id")

    def __init__(self, size: int) -> None:
        self.messages: deque[Message] = deque(maxlen=size)
        self.next_id = 1
        self.evicted = 0  # the newest id no longer held


class MemoryLog(StoredLog):
    """Keeps the last ``history_size`` messages of each room in a deque."""

    def __init__(
        self,
        history_size: int,
        bus: Bus,
        max_rooms: int = 10_000,
        followed: Container[str] = frozenset(),
    ) -> None:
        super().__init__(bus)
        self._size = history_size
        self._max_rooms = max_rooms
        # Rooms with subscribers here are never forgotten: their ids would
        # start again below what the subscribers already hold.
        self._followed = followed
        self._logs: OrderedDict[str, _RoomLog] = OrderedDict()  # least recently used first

    async def store(self, draft: Draft, once: Once | None = None) -> Message:
        log = self._logs.get(draft.room)
        if log is None:
            log = self._logs[draft.room] = _RoomLog(self._size)
            if len(self._logs) > self._max_rooms:
                self._forget_one()
        else:
            self._logs.move_to_end(draft.room)
        msg = Message(
            room=draft.room,
            id=str(log.next_id),
            user=draft.user,
            text=draft.text,
            ts=round(time.time(), 3),
            client_id=draft.client_id,
        )
        if len(log.messages) == log.messages.maxlen:
            log.evicted = int(log.messages[0].id)
        log.messages.append(msg)
        log.next_id += 1
        return msg

    def _forget_one(self) -> None:
        """Forget the room used longest ago that nobody here follows: a resume
        into it is told of the gap, and its ids start again from 1."""
        for name in self._logs:  # least recently used first
            if name not in self._followed:
                del self._logs[name]
                return

    async def history(self, room: str, since: str | None, limit: int) -> History:
        log = self._logs.get(room)
        if log is None:
            return History(gap=since is not None and parse_id(since) != (0, 0))
        self._logs.move_to_end(room)
        if since is None:
            return History(list(log.messages)[-limit:] if limit > 0 else [])
        after = parse_id(since)[0]
        newest = log.next_id - 1
        if after > newest:
            return History(list(log.messages)[-limit:] if limit > 0 else [], gap=True)
        held = [m for m in log.messages if int(m.id) > after]
        return History(held[:limit], gap=after < log.evicted)

    async def page(
        self, room: str, *, after: str | None, before: str | None, limit: int, newest_first: bool
    ) -> Page:
        log = self._logs.get(room)
        low = parse_id(after)[0] if after is not None else 0
        high = parse_id(before)[0] if before is not None else None
        held = [
            m
            for m in (log.messages if log is not None else ())
            if int(m.id) > low and (high is None or int(m.id) < high)
        ]
        if newest_first:
            held.reverse()
        return Page(held[:limit], more=len(held) > limit)

    async def rooms(self) -> list[str]:
        return list(self._logs)
