"""A room's local subscribers and the fan-out to them.

Fan-out never awaits a subscriber. Events delivered to a room are queued on
the room; once per event-loop pass the hub flushes each room: the queued
events are joined into one byte string per wire format, and each subscriber
gets that string in one write. A subscriber whose unsent bytes pass its bound
is dropped with ``CloseReason.SLOW``.
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
        self._max_buffer = max_buffer
        self._on_close = on_close
        self.left = True  # no presence to leave until the hub has joined it

    def write(self, data: bytes) -> None:
        """Hand bytes to the transport; drop the subscriber if it is behind."""
        try:
            unsent = self.sink.write(data)
        except ConnectionError:
            self.close(CloseReason.GONE)
            return
        if unsent > self._max_buffer:
            self.close(CloseReason.SLOW)

    def offer(self, events: list[Event]) -> int:
        """The slow path of a flush: hold while syncing, skip replayed ids."""
        if self.state is SubState.SYNCING:
            self._held.extend(events)
            return 0
        if self.state is not SubState.LIVE:
            return 0
        floor = self._floor
        if floor is not None:
            kept = []
            for ev in events:
                if ev.id is None or floor is None:
                    kept.append(ev)
                elif parse_id(ev.id) > floor:
                    kept.append(ev)
                    floor = None
            self._floor = floor
            events = kept
        if events:
            self.write(b"".join(ev.encoded(self._wire) for ev in events))
        return len(events)

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
        if last != (-1, -1):
            self._floor = last
        if events:
            self.write(b"".join(ev.encoded(self._wire) for ev in events))

    def close(self, reason: CloseReason) -> None:
        """Stop delivery at once and ask the transport to close."""
        if self.state is SubState.CLOSED:
            return
        self.state = SubState.CLOSED
        self.close_reason = reason
        self._held = []
        self.room.remove(self)
        self.sink.close(reason)
        self._on_close(self)


class Room:
    """The subscribers of one room in this process, and its queued events."""

    __slots__ = ("name", "pending", "subscribers")

    def __init__(self, name: str) -> None:
        self.name = name
        self.subscribers: dict[Subscriber, None] = {}
        self.pending: list[Event] = []

    def add(self, sub: Subscriber) -> None:
        self.subscribers[sub] = None

    def remove(self, sub: Subscriber) -> None:
        self.subscribers.pop(sub, None)

    def flush(self) -> int:
        """Write the queued events to every subscriber; return deliveries."""
        events, self.pending = self.pending, []
        if not events:
            return 0
        count = len(events)
        joined: dict[int, bytes] = {}
        delivered = 0
        live = SubState.LIVE
        for sub in list(self.subscribers):
            if sub.state is live and sub._floor is None:
                wire = sub._wire
                data = joined.get(id(wire))
                if data is None:
                    data = joined[id(wire)] = b"".join(ev.encoded(wire) for ev in events)
                sub.write(data)
                delivered += count
            else:
                delivered += sub.offer(events)
        return delivered

    def __len__(self) -> int:
        return len(self.subscribers)
