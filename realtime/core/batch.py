"""Writing the same bytes to every live subscriber of a room: the fan-out's
inner loop, where most of the server's user-space CPU goes.

A subscriber's sink may hand the room a descriptor: the room's own duplicate
of the socket's file descriptor (``Sink.descriptor``). The room writes the
joined bytes to it with one ``os.write`` while the transport holds no unsent
bytes of its own, so nothing the transport queued (a ping, the rest of a
frame) is overtaken. The transport says when it starts and stops holding
bytes (``Sink.watch_unsent``), so the flush asks no transport anything. A
short write hands the rest to the transport, which then holds bytes: until
it has sent them, that subscriber's writes go through the transport, and its
unsent bytes are checked against its bound. Subscribers without a descriptor
(TLS, tests, long-polling) always go through their writer.

The writes are ``map(os.write, descriptors, repeat(data))``: the loop runs
in C, with no bytecode and no object of the subscriber's touched per
delivery; a Python loop calling each transport's ``write`` costs twice the
user-space time (``benchmarks/README.md``).
"""

from __future__ import annotations

import errno
import logging
import os
from array import array
from collections.abc import Iterable
from itertools import compress, repeat
from operator import ne, not_
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .room import Subscriber

log = logging.getLogger("realtime.hub")

# What writing to a connection that is already closed raises (uvloop raises
# RuntimeError for a closed handle).
GONE_ERRORS = (RuntimeError, ConnectionError)


class Ended:
    """The subscribers a flush found gone (the connection failed) or slow
    (unsent bytes over their bound): the room closes them afterwards."""

    __slots__ = ("gone", "slow")

    def __init__(self) -> None:
        self.gone: list[Subscriber] = []
        self.slow: list[Subscriber] = []


class Batch:
    """The plain live subscribers of one wire format, laid out for one write
    each: built by the room when its membership changed, used by each flush.

    ``_clear[i]`` is 1 while subscriber ``i``'s transport holds nothing, so
    its bytes may go straight to its descriptor ``_fds[i]``.
    """

    __slots__ = ("_clear", "_direct", "_fds", "_held", "_others")

    def __init__(self, subs: list[Subscriber]) -> None:
        self._direct = [sub for sub in subs if sub.descriptor >= 0]
        # An array, not a list: its numbers sit side by side, not in one
        # int object per subscriber scattered over the heap.
        self._fds = array("i", (sub.descriptor for sub in self._direct))
        self._clear = bytearray(not sub.unsent for sub in self._direct)
        self._held = len(self._direct) - sum(self._clear)
        self._others = [sub for sub in subs if sub.descriptor < 0]
        for i, sub in enumerate(self._direct):
            sub.slot = (self, i)

    def __len__(self) -> int:
        return len(self._direct) + len(self._others)

    def mark(self, i: int, unsent: bool) -> None:
        """Subscriber ``i``'s transport started (or stopped) holding bytes."""
        if self._clear[i] == unsent:  # a change
            self._clear[i] = not unsent
            self._held += 1 if unsent else -1

    def send(self, data: bytes, ended: Ended) -> None:
        """Write ``data`` to every subscriber; note in ``ended`` those to close."""
        direct, fds = self._direct, self._fds
        if self._held:  # those transports hold bytes: ours queue behind them
            for sub in compress(direct, map(not_, self._clear)):
                write_through(sub, data, ended)
            direct = list(compress(direct, self._clear))
            fds = array("i", compress(fds, self._clear))
        for i, written in short_writes(fds, data):
            sub = direct[i]
            if written < 0 or sub.writer.is_closing():
                # A closing transport would drop the rest of the frame.
                ended.gone.append(sub)
            else:  # the kernel took part: the transport queues the rest
                write_through(sub, data[written:], ended)
        for sub in self._others:
            write_through(sub, data, ended)


def short_writes(fds: Iterable[int], data: bytes) -> list[tuple[int, int]]:
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
        except OSError as exc:  # EPIPE, ECONNRESET, ETIMEDOUT: the peer is gone
            if exc.errno == errno.EBADF:  # a descriptor closed while in use: a bug
                log.error("fan-out wrote to a closed descriptor", exc_info=exc)
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
