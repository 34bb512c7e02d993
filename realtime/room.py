"""A room's local subscribers and the fan-out to them.

Fan-out never awaits a subscriber: :meth:`Subscriber.offer` appends the
event's pre-encoded bytes to a per-subscriber list, and the hub flushes every
list once per event-loop pass with one write per subscriber. A subscriber
whose unsent bytes pass its bound is dropped with ``CloseReason.SLOW``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from .broker import Member
from .protocol import Event, Wire, parse_id


class CloseReason(enum.Enum):
    SLOW = "slow consumer: too far behind, resume with the last id"
    SHUTDOWN = "server shutting down"
    GONE = "connection lost"


class Sink(Protocol):
    """What a transport gives the room: write bytes, or close with a reason."""

    @property
    def wire(self) -> Wire: ...

    def write(self, data: bytes) -> int:
        """Write without waiting; return the bytes still unsent. Raise
        ``ConnectionError`` when the connection is gone."""

    def close(self, reason: CloseReason) -> None: ...


class SubState(enum.Enum):
    SYNCING = "syncing"  # history being read; live events are held
    LIVE = "live"
    CLOSED = "closed"


class Subscriber:
    __slots__ = (
        "_floor",
        "_held",
        "_max_buffer",
        "_on_close",
        "_pending",
        "_schedule",
        "_wire",
        "close_reason",
        "left",
        "member",
        "room",
        "sink",
        "state",
    )

    def __init__(
        self,
        sink: Sink,
        member: Member,
        room: Room,
        max_buffer: int,
        schedule: Callable[[Subscriber], None],
        on_close: Callable[[Subscriber], None],
    ) -> None:
        self.sink = sink
        self.member = member
        self.room = room
        self.state = SubState.SYNCING
        self.close_reason: CloseReason | None = None
        self._wire = sink.wire
        self._held: list[Event] = []
        # The newest id the replay sent: a live event at or below it is one
        # the history read already saw (stored, but not yet broadcast when
        # the read ran) and must not be sent twice.
        self._floor: tuple[int, int] | None = None
        self._pending: list[bytes] = []
        self._max_buffer = max_buffer
        self._schedule = schedule
        self._on_close = on_close
        self.left = True  # no presence to leave until the hub has joined it

    def offer(self, event: Event) -> None:
        if self.state is SubState.LIVE:
            if self._floor is not None and event.id is not None:
                if parse_id(event.id) <= self._floor:
                    return
                self._floor = None
            pending = self._pending
            pending.append(event.encoded(self._wire))
            if len(pending) == 1:
                self._schedule(self)
        elif self.state is SubState.SYNCING:
            self._held.append(event)

    def go_live(self, first: list[Event], since: str | None) -> None:
        """Send ``first`` (gap notice, replay), then what arrived meanwhile."""
        if self.state is not SubState.SYNCING:
            return
        last = parse_id(since) if since is not None else (-1, -1)
        for ev in first:
            if ev.id is not None:
                last = max(last, parse_id(ev.id))
        events = list(first)
        for ev in self._held:
            if ev.id is None or parse_id(ev.id) > last:
                events.append(ev)
        self._held = []
        self.state = SubState.LIVE
        for ev in events:
            self.offer(ev)
        if last != (-1, -1):
            self._floor = last

    def flush(self) -> int:
        """Write what is pending in one write; return how many events it held."""
        pending = self._pending
        count = len(pending)
        if not count or self.state is not SubState.LIVE:
            pending.clear()
            return 0
        data = pending[0] if count == 1 else b"".join(pending)
        pending.clear()
        try:
            unsent = self.sink.write(data)
        except ConnectionError:
            self.close(CloseReason.GONE)
            return 0
        if unsent > self._max_buffer:
            self.close(CloseReason.SLOW)
        return count

    def close(self, reason: CloseReason) -> None:
        """Stop delivery at once and ask the transport to close."""
        if self.state is SubState.CLOSED:
            return
        self.state = SubState.CLOSED
        self.close_reason = reason
        self._pending.clear()
        self._held = []
        self.room.remove(self)
        self.sink.close(reason)
        self._on_close(self)


class Room:
    """The subscribers of one room in this process."""

    __slots__ = ("name", "subscribers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.subscribers: dict[Subscriber, None] = {}

    def add(self, sub: Subscriber) -> None:
        self.subscribers[sub] = None

    def remove(self, sub: Subscriber) -> None:
        self.subscribers.pop(sub, None)

    def fanout(self, event: Event) -> None:
        for sub in self.subscribers:
            sub.offer(event)

    def __len__(self) -> int:
        return len(self.subscribers)
