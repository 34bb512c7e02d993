"""The room's direct writes to sockets (``realtime.core.batch``), over real
socket pairs: what the peer reads, in order, when the writer holds bytes,
when the kernel takes only part, and when the peer is gone."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator

import pytest

from realtime.core.ports import Member
from realtime.core.protocol import Event, Message
from realtime.core.room import CloseReason, Room, Subscriber

from .sinks import MemorySink


def msg(i: int) -> Event:
    return Event.message(Message("r", str(i), "u", f"m{i}", 0.0))


class SocketSink(MemorySink):
    """A sink whose descriptor is one end of a socket pair. Its writer plays
    the transport: bytes written to it are held until :meth:`release` sends
    them, as a transport does once the socket drains, and it says when it
    starts and stops holding bytes."""

    def __init__(self, sndbuf: int | None = None) -> None:
        super().__init__()
        self.near, self.far = socket.socketpair()
        if sndbuf is not None:
            self.near.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.near.setblocking(False)
        self.far.setblocking(False)
        self.descriptor = os.dup(self.near.fileno())
        self.held = bytearray()
        self.on_change: Callable[[bool], None] = lambda unsent: None

    def watch_unsent(self, on_change: Callable[[bool], None]) -> bool:
        self.on_change = on_change
        return bool(self.held)

    def write(self, data: bytes) -> None:
        super().write(data)
        if data and not self.held:
            self.on_change(True)
        self.held += data

    def get_write_buffer_size(self) -> int:
        return len(self.held)

    def release(self) -> bytes:
        """Send what the writer holds while reading the far end; return
        everything the far end read."""
        got = bytearray()
        while True:
            got += self.read()
            if not self.held:
                self.on_change(False)
                return bytes(got)
            try:
                sent = self.near.send(self.held)
            except BlockingIOError:
                continue
            del self.held[:sent]

    def read(self) -> bytes:
        out = bytearray()
        while True:
            try:
                chunk = self.far.recv(1 << 16)
            except BlockingIOError:
                return bytes(out)
            if not chunk:
                return bytes(out)
            out += chunk

    def shut(self) -> None:
        for fd in (self.near, self.far):
            fd.close()
        os.close(self.descriptor)


@pytest.fixture
def sinks() -> Iterator[list[SocketSink]]:
    made: list[SocketSink] = []
    yield made
    for sink in made:
        sink.shut()


def live(room: Room, sink: MemorySink, closed: list[Subscriber]) -> Subscriber:
    sub = Subscriber(sink, Member("c", "ana", "test"), room, 64 * 1024, closed.append)
    sub.go_live([], since=None)
    return sub


def flush(room: Room, *events: Event) -> int:
    for ev in events:
        room.queue(ev)
    return room.flush()


def lines(data: bytes) -> list[str]:
    return [line for line in data.decode().splitlines() if line]


def test_each_socket_gets_the_joined_bytes_straight_from_the_room(
    sinks: list[SocketSink],
) -> None:
    room, closed = Room("r"), []
    sinks += [SocketSink() for _ in range(5)]
    plain = MemorySink()  # no descriptor: through its writer, as before
    for sink in sinks:
        live(room, sink, closed)
    live(room, plain, closed)
    assert flush(room, msg(1), msg(2)) == 12
    expected = [msg(1).json, msg(2).json]
    for sink in sinks:
        assert lines(sink.read()) == expected
        assert sink.writes == []  # nothing went through the writer
    assert [e["id"] for e in plain.events()] == ["1", "2"] and closed == []


def test_a_writer_holding_bytes_keeps_its_order(sinks: list[SocketSink]) -> None:
    room, closed = Room("r"), []
    sink = SocketSink()
    sinks.append(sink)
    live(room, sink, closed)
    flush(room, msg(1))
    sink.write(b"ping\n")  # the transport queued a frame of its own
    flush(room, msg(2))  # must queue behind it, not overtake it
    assert lines(sink.read()) == [msg(1).json]
    got = sink.release()
    flush(room, msg(3))  # nothing held again: straight to the socket
    assert lines(got + sink.read()) == ["ping", msg(2).json, msg(3).json]
    assert closed == []


def test_a_short_write_hands_the_rest_to_the_writer_then_a_full_one_is_slow(
    sinks: list[SocketSink],
) -> None:
    room, closed = Room("r"), []
    stuck, fine = SocketSink(sndbuf=4096), SocketSink()
    sinks += [stuck, fine]
    stuck_sub = live(room, stuck, closed)
    live(room, fine, closed)
    big = Event.message(Message("r", "1", "u", "x" * 20_000, 0.0))
    flush(room, big)  # more than the kernel takes for a reader that does not read
    assert 0 < len(stuck.held) < len(big.json) + 1
    assert closed == []  # behind, but within its bound
    for i in range(2, 6):
        flush(room, Event.message(Message("r", str(i), "u", "x" * 20_000, 0.0)))
    assert closed == [stuck_sub] and stuck.closed is CloseReason.SLOW
    assert len(lines(fine.read())) == 5
    # what the stuck reader got, then the held rest, is every byte in order
    assert lines(stuck.release())[0] == big.json


def test_a_peer_that_is_gone_is_closed_as_gone_and_the_others_still_get_it(
    sinks: list[SocketSink],
) -> None:
    room, closed = Room("r"), []
    sinks += [SocketSink() for _ in range(3)]
    subs = [live(room, sink, closed) for sink in sinks]
    sinks[1].far.close()
    sinks[1].far = socket.socket()  # so shut() has something to close
    assert flush(room, msg(1)) == 2
    assert closed == [subs[1]] and subs[1].close_reason is CloseReason.GONE
    assert lines(sinks[0].read()) == lines(sinks[2].read()) == [msg(1).json]
    assert flush(room, msg(2)) == 2 and len(room) == 2
