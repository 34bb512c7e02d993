"""A room's local subscribers and the fan-out to them.

Fan-out never awaits a subscriber. Events delivered to a room are queued on
the room; once per event-loop pass the hub flushes each room: the queued
events are joined into one byte string per wire format, and each subscriber
gets that string in one write. A subscriber whose unsent bytes pass its bound
is dropped with ``CloseReason.SLOW``.

A :class:`Subscriber` owns its whole state machine (syncing → live →
closed); the room only keeps the plain live ones apart so its flush loop is
one write per subscriber.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from typing import Protocol

from .batch import Batch, Ended, write_through
from .ports import Member
from .protocol import Event, Wire, parse_id


class CloseReason(enum.Enum):
    """Why the server ends a subscriber; each transport maps it to its wire
    ending (a WebSocket close code, a last SSE event)."""

    SLOW = "slow consumer: too far behind, resume with the last id"
    SHUTDOWN = "server shutting down"
    GONE = "connection lost"
    DISCONNECT = "disconnected by the server"  # the client should not reconnect
    DISCONNECT_RECONNECT = "disconnected by the server; reconnect"
    TOKEN_EXPIRED = "token expired"


class Writer(Protocol):
    """Where a subscriber's bytes go: an ``asyncio.WriteTransport`` fits."""

    def write(self, data: bytes) -> None:
        """Queue bytes without waiting. May raise ``RuntimeError`` or
        ``ConnectionError`` once the connection is closed."""

    def get_write_buffer_size(self) -> int:
        """Bytes written but not yet sent."""

    def is_closing(self) -> bool:
        """True once the connection is closing or closed."""


class Sink(Protocol):
    """What a transport gives the room: where to write bytes, in which wire
    format, and how to close with a reason."""

    @property
    def wire(self) -> Wire: ...

    @property
    def writer(self) -> Writer: ...

    @property
    def kernel_buffer(self) -> int:
        """Bytes the kernel holds for the connection once its send buffer is
        full. The writer buffers only past that point, so its buffered bytes
        plus these are what the client has not received: both count toward
        the subscriber's bound."""

    @property
    def descriptor(self) -> int:
        """A duplicate of the socket's file descriptor that the room may
        write to directly while the writer holds no unsent bytes, or -1
        (see :mod:`.batch`). The sink closes it once the subscriber has
        left the room, never before."""

    def watch_unsent(self, on_change: Callable[[bool], None]) -> bool:
        """Only for a sink with a descriptor: call ``on_change(True)`` when
        the writer starts holding unsent bytes and ``on_change(False)`` once
        it holds none; return whether it holds some now."""

    def close(self, reason: CloseReason, detail: str = "") -> None:
        """Called once, when the subscriber is closed by the server;
        ``detail`` replaces the reason's own text (a disconnect's reason)."""


class SubState(enum.Enum):
    SYNCING = "syncing"  # history being read; live events are held
    LIVE = "live"
    CLOSED = "closed"


NO_ID = (-1, -1)


class Subscriber:
    """One connection's place in a room: what it has been sent, and its state."""

    __slots__ = (
        "_floor",
        "_held",
        "_max_buffer",
        "_on_close",
        "close_reason",
        "descriptor",
        "max_buffer",
        "member",
        "room",
        "sink",
        "slot",
        "state",
        "unsent",
        "wire",
        "writer",
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
        self.wire = sink.wire
        self.writer = sink.writer
        self.descriptor = sink.descriptor
        # Where the room's flush keeps this subscriber (see .batch), and
        # whether its writer holds unsent bytes: told by the sink.
        self.slot: tuple[Batch, int] | None = None
        self.unsent = False
        if self.descriptor >= 0:
            self.unsent = sink.watch_unsent(self._unsent_changed)
        self.state = SubState.SYNCING
        self.close_reason: CloseReason | None = None
        self._held: list[Event] = []
        # The newest id the replay sent: a live event at or below it is one
        # the history read already saw (stored, but not yet broadcast when
        # the read ran) and must not be sent twice.
        self._floor: tuple[int, int] | None = None
        self.max_buffer = max(0, max_buffer - sink.kernel_buffer)
        self._on_close = on_close
        room.add(self)

    def _unsent_changed(self, unsent: bool) -> None:
        self.unsent = unsent
        if self.slot is not None:
            batch, i = self.slot
            batch.mark(i, unsent)

    def write(self, data: bytes) -> None:
        """Hand bytes to the transport; drop the subscriber if it is gone or
        behind. (:meth:`Room.flush` writes to plain live subscribers through
        :mod:`.batch`, and closes the same way.)"""
        ended = Ended()
        write_through(self, data, ended)
        if ended.gone:
            self.close(CloseReason.GONE)
        elif ended.slow:
            self.close(CloseReason.SLOW)

    def offer(self, events: list[Event]) -> int:
        """Deliver events outside the plain path: hold while syncing, skip
        replayed ids just after going live. Returns the events written."""
        if self.state is SubState.SYNCING:
            self._held.extend(events)
            return 0
        if self.state is not SubState.LIVE:
            return 0
        if self._floor is not None:
            events = self._above_floor(events)
        if events:
            self.write(b"".join(ev.encoded(self.wire) for ev in events))
        return len(events)

    def _above_floor(self, events: list[Event]) -> list[Event]:
        floor = self._floor
        kept = []
        for ev in events:
            if ev.id is None or floor is None:
                kept.append(ev)
            elif parse_id(ev.id) > floor:
                kept.append(ev)
                floor = None  # ids only grow: past the floor once, past it for good
        self._floor = floor
        if floor is None and self.state is SubState.LIVE:
            self.room.promote(self)
        return kept

    def go_live(self, first: list[Event], since: str | None) -> None:
        """Send ``first`` (gap notice, replay), then what arrived meanwhile."""
        if self.state is not SubState.SYNCING:
            return
        last = parse_id(since) if since is not None else NO_ID
        for ev in first:
            if ev.id is not None:
                last = max(last, parse_id(ev.id))
        events = list(first)
        events.extend(ev for ev in self._held if ev.id is None or parse_id(ev.id) > last)
        self._held = []
        self.state = SubState.LIVE
        if last != NO_ID:
            self._floor = last
        else:
            self.room.promote(self)
        if events:
            self.write(b"".join(ev.encoded(self.wire) for ev in events))

    def close(self, reason: CloseReason, detail: str = "") -> None:
        """The server ends this subscriber: stop delivery, ask the transport
        to close, tell the hub (which announces the leave at once)."""
        if self.state is SubState.CLOSED:
            return
        self.detach()
        self.close_reason = reason
        self.sink.close(reason, detail)
        self._on_close(self)

    def detach(self) -> None:
        """Stop delivery without closing the transport (its handler is ending)."""
        self.state = SubState.CLOSED
        self._held = []
        self.slot = None
        self.room.remove(self)


class Room:
    """The subscribers of one room in this process, and its queued events.

    ``_plain`` holds the live subscribers with nothing to filter: the flush
    writes the joined bytes to each, a :class:`~.batch.Batch` per wire
    format. Everyone else (syncing, or just past a replay) is in ``_other``
    and takes the slower :meth:`Subscriber.offer`.
    """

    __slots__ = ("_batches", "_other", "_plain", "name", "pending")

    def __init__(self, name: str) -> None:
        self.name = name
        self._plain: dict[Subscriber, None] = {}
        self._other: dict[Subscriber, None] = {}
        self._batches: dict[Wire, Batch] | None = {}  # None: rebuild at the next flush
        self.pending: list[Event] = []

    def add(self, sub: Subscriber) -> None:
        self._other[sub] = None

    def promote(self, sub: Subscriber) -> None:
        if self._other.pop(sub, 0) is None:
            self._plain[sub] = None
            self._batches = None

    def remove(self, sub: Subscriber) -> None:
        if self._plain.pop(sub, 0) is None:
            self._batches = None
        self._other.pop(sub, None)

    def queue(self, event: Event) -> bool:
        """Queue an event for the next flush; True when it is the first one."""
        self.pending.append(event)
        return len(self.pending) == 1

    def flush(self) -> int:
        """Write the queued events to every subscriber; return deliveries."""
        events, self.pending = self.pending, []
        if not events:
            return 0
        count = len(events)
        batches = self._batches
        if batches is None:
            batches = self._batches = self._batch()
        ended = Ended()
        delivered = 0
        for wire, batch in batches.items():
            batch.send(b"".join(ev.encoded(wire) for ev in events), ended)
            delivered += count * len(batch)
        for sub in ended.gone:
            if sub.state is not SubState.CLOSED:
                delivered -= count
            sub.close(CloseReason.GONE)
        for sub in ended.slow:
            sub.close(CloseReason.SLOW)
        for sub in list(self._other):
            delivered += sub.offer(events)
        return delivered

    def _batch(self) -> dict[Wire, Batch]:
        by_wire: dict[Wire, list[Subscriber]] = {}
        for sub in self._plain:
            by_wire.setdefault(sub.wire, []).append(sub)
        return {wire: Batch(subs) for wire, subs in by_wire.items()}

    def __iter__(self) -> Iterator[Subscriber]:
        yield from self._plain
        yield from self._other

    def __len__(self) -> int:
        return len(self._plain) + len(self._other)
