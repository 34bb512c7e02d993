"""History in memory: the last ``history_size`` messages of each room."""

from __future__ import annotations

import time
from collections import deque

from ..core.ports import Bus, History
from ..core.protocol import Draft, Message, parse_id
from .local import StoredLog


class _RoomLog:
    __slots__ = ("evicted", "messages", "next_id")

    def __init__(self, size: int) -> None:
        self.messages: deque[Message] = deque(maxlen=size)
        self.next_id = 1
        self.evicted = 0  # the newest id no longer held


class MemoryLog(StoredLog):
    """Keeps the last ``history_size`` messages of each room in a deque."""

    def __init__(self, history_size: int, bus: Bus) -> None:
        super().__init__(bus)
        self._size = history_size
        self._logs: dict[str, _RoomLog] = {}

    async def store(self, draft: Draft) -> Message:
        log = self._logs.get(draft.room)
        if log is None:
            log = self._logs[draft.room] = _RoomLog(self._size)
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

    async def history(self, room: str, since: str | None, limit: int) -> History:
        log = self._logs.get(room)
        if log is None:
            return History(gap=since is not None and parse_id(since) != (0, 0))
        if since is None:
            return History(list(log.messages)[-limit:] if limit > 0 else [])
        after = parse_id(since)[0]
        newest = log.next_id - 1
        if after > newest:
            return History(list(log.messages)[-limit:] if limit > 0 else [], gap=True)
        held = [m for m in log.messages if int(m.id) > after]
        return History(held[:limit], gap=after < log.evicted)

    async def rooms(self) -> list[str]:
        return list(self._logs)
