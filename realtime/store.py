"""Where a room's history lives: the interface, and the in-memory store."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field

from .protocol import Draft, Message, parse_id


class StoreUnavailable(Exception):
    """History cannot be written or read right now; nothing was acknowledged."""


@dataclass(slots=True)
class History:
    """Messages read back for a join or a resume, oldest first.

    ``gap`` is true when the resume point is older than what the store still
    holds (messages after it were evicted) or unknown to it (newer than the
    newest id, as after a reset): the client must be told it missed something.
    """

    messages: list[Message] = field(default_factory=list)
    gap: bool = False


class Store(ABC):
    """Appends messages with strictly increasing ids per room, reads them back."""

    @abstractmethod
    async def append(self, draft: Draft) -> Message: ...

    @abstractmethod
    async def read(self, room: str, since: str | None, limit: int) -> History:
        """The last ``limit`` messages, or those after ``since`` (at most limit)."""

    @abstractmethod
    def rooms(self) -> list[str]: ...

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _RoomLog:
    __slots__ = ("evicted", "messages", "next_id")

    def __init__(self, size: int) -> None:
        self.messages: deque[Message] = deque(maxlen=size)
        self.next_id = 1
        self.evicted = 0  # the newest id no longer held


class MemoryStore(Store):
    """Keeps the last ``history_size`` messages of each room in a deque."""

    def __init__(self, history_size: int) -> None:
        self._size = history_size
        self._logs: dict[str, _RoomLog] = {}

    def _log(self, room: str) -> _RoomLog:
        log = self._logs.get(room)
        if log is None:
            log = self._logs[room] = _RoomLog(self._size)
        return log

    async def append(self, draft: Draft) -> Message:
        log = self._log(draft.room)
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

    async def read(self, room: str, since: str | None, limit: int) -> History:
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

    def rooms(self) -> list[str]:
        return list(self._logs)
