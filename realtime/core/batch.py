"""Writing the same bytes to every live subscriber of a room: the fan-out's
inner loop, where most of the server's user-space CPU goes.

A subscriber's sink may hand the room a descriptor: the room's own duplicate
of the socket's file descriptor (``Sink.descriptor``). The room writes the
joined bytes to it with one ``os.write`` whenever the transport holds no
unsent bytes of its own, so nothing the transport queued (a ping, a partly
sent frame) can be overtaken. A short write hands the rest to the transport,
which then holds bytes: until it has sent them, that subscriber's writes go
through the transport, and its unsent bytes are checked against its bound.
Subscribers without a descriptor (TLS, tests, long-polling) always go
through their writer.

Both passes over the subscribers (the transports' unsent bytes, then the
writes) are ``map`` over parallel lists, so they run in C: no bytecode and
no attribute lookups per delivery. Measured against a loop in Python, this
halves the user-space time per delivery (``benchmarks/README.md``).

A duplicate is used, not the transport's own descriptor, because the
transport closes its descriptor the moment it closes, and the number may be
given to the next accepted connection before the room hears of it. The
duplicate is closed only after its subscriber has left the room.
"""

from __future__ import annotations

import os
from itertools import compress, repeat
from operator import methodcaller, ne, not_
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .room import Subscriber

# What writing to a connection that is already closed raises (uvloop raises
# RuntimeError for a closed handle).
GONE_ERRORS = (RuntimeError, ConnectionError)

# Bytes a writer holds: a method call on each writer, without a bound method.
UNSENT = methodcaller("get_write_buffer_size")


class Ended:
    """The subscribers a flush found gone (the connection failed) or slow
    (unsent bytes over their bound): the room closes them afterwards."""

    __slots__ = ("gone", "slow")

    def __init__(self) -> None:
        self.gone: list[Subscriber] = []
        self.slow: list[Subscriber] = []


class Batch:
    """The plain live subscribers of one wire format, laid out for one write
    each: built by the room when its membership changed, used by each flush."""

    __slots__ = ("_direct", "_fds", "_others", "_writers")

    def __init__(self, subs: list[Subscriber]) -> None:
        self._direct = [sub for sub in subs if sub.descriptor >= 0]
        self._fds = [sub.descriptor for sub in self._direct]
        self._writers = [sub.writer for sub in self._direct]
        self._others = [sub for sub in subs if sub.descriptor < 0]

    def __len__(self) -> int:
        return len(self._direct) + len(self._others)

    def send(self, data: bytes, ended: Ended) -> None:
        """Write ``data`` to every subscriber; note in ``ended`` those to close."""
        direct, fds = self._direct, self._fds
        held = list(map(UNSENT, self._writers))
        if any(held):  # some transports hold bytes: those keep their order
            for i in compress(range(len(direct)), held):
                write_through(direct[i], data, ended)
            picked = list(compress(range(len(direct)), map(not_, held)))
            fds = list(map(fds.__getitem__, picked))
            direct = list(map(direct.__getitem__, picked))
        for i, written in short_writes(fds, data):
            if written < 0:
                ended.gone.append(direct[i])
            else:  # the kernel took part: the transport queues the rest
                write_through(direct[i], data[written:], ended)
        for sub in self._others:
            write_through(sub, data, ended)


def short_writes(fds: list[int], data: bytes) -> list[tuple[int, int]]:
    """``os.write(fd, data)`` for each descriptor; return (index, bytes
    written) where not all of ``data`` went, -1 for a failed connection."""
    written: list[int] = []
    pending = iter(fds)
    while True:
        try:
            written.extend(map(os.write, pending, repeat(data)))
            break
        except BlockingIOError:  # the kernel's buffer is full
            written.append(0)
        except OSError:  # EPIPE, ECONNRESET, ETIMEDOUT: the peer is gone
            written.append(-1)
    short = compress(range(len(written)), map(ne, written, repeat(len(data))))
    return [(i, written[i]) for i in short]


def write_through(sub: Subscriber, data: bytes, ended: Ended) -> None:
    """Write through the subscriber's writer and check its bound."""
    writer = sub.writer
    try:
        writer.write(data)
    except GONE_ERRORS:  # closed under us; its handler is ending
        ended.gone.append(sub)
        return
    if writer.get_write_buffer_size() > sub.max_buffer:
        ended.slow.append(sub)
