"""The room's direct path to a subscriber's socket.

The room writes the bytes of a flush straight to each socket, one
``os.write`` per subscriber (``realtime.core.batch``), with two things from
the transport layer:

- A duplicate of the socket's file descriptor. The transport closes its own
  descriptor the moment it closes, and the number may go to the next
  accepted connection before the room hears of it; the duplicate is closed
  only after the subscriber has left the room (:meth:`DirectSocket.release`).
- Word of when the transport holds unsent bytes of its own (a ping, the rest
  of a frame the kernel took only part of): the room's bytes must then queue
  behind them. Asking every transport before every write would cost a cache
  miss per subscriber per message; instead the transport says so itself.
  With write-buffer limits of 0, asyncio's and uvloop's transports call
  ``pause_writing()`` the moment they keep a byte and ``resume_writing()``
  once they hold none. :class:`UnsentWatch` stands between the transport and
  aiohttp's protocol to hear both, and passes every call on unchanged.
  aiohttp's protocol is then paused whenever the transport holds anything,
  so where aiohttp waits for its writes to drain (a close frame, after
  64 KiB of its own writes) it waits for an empty buffer, not one under
  64 KiB; a close is bounded by its timeout all the same.
- Word of when the transport is gone: once it has lost its connection the
  room writes to the duplicate no more (it is marked as holding bytes for
  good) and the duplicate is closed at once, so the peer sees the end
  without waiting for the handler to finish.

A connection in a room holds two descriptors (its own and the duplicate).
Duplicates only take numbers in the lower half of the descriptor table, so
they never crowd out connections: past that, a subscriber goes without one
and is written to through its transport. The server raises its soft limit
of open files to the hard limit at start (``server.raise_fd_limit``).

TLS connections get neither (bytes must go through the TLS transport): their
subscribers are written to through the transport, as the room does for any
sink without a descriptor.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable


class UnsentWatch(asyncio.Protocol):
    """aiohttp's protocol, plus ``on_change(unsent)`` each time the
    transport starts or stops holding unsent bytes, and ``on_lost()`` when
    the connection is gone."""

    __slots__ = ("_on_change", "_on_lost", "_transport", "inner")

    def __init__(
        self,
        transport: asyncio.Transport,
        inner: asyncio.BaseProtocol,
        on_change: Callable[[bool], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.inner = inner
        self._transport = transport
        self._on_change = on_change
        self._on_lost = on_lost

    def pause_writing(self) -> None:
        self.inner.pause_writing()
        self._on_change(True)

    def resume_writing(self) -> None:
        self.inner.resume_writing()
        if not self._transport.is_closing():  # a closing one is written to no more
            self._on_change(False)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool | None:
        keep_open: bool | None = self.inner.eof_received()  # type: ignore[attr-defined]
        return keep_open

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        # Held for good first: the room never writes to a descriptor whose
        # subscriber is marked as holding bytes, so ``on_lost`` may then
        # close it even while the subscriber is still in the room.
        self._on_change(True)
        self._on_lost()
        self.inner.connection_lost(exc)


def spare_duplicate(fd: int) -> int:
    """A duplicate of ``fd`` numbered in the lower half of the process's
    descriptor table, or -1: duplicates never take the upper half, which
    stays for connections (a connection past that goes without one). Also
    -1 while SIGPIPE is not ignored (Python ignores it, a program embedding
    the server may not): ``os.write`` to a vanished peer would then kill the
    process instead of raising EPIPE."""
    import resource
    import signal

    if getattr(signal, "SIGPIPE", None) and signal.getsignal(signal.SIGPIPE) != signal.SIG_IGN:
        return -1

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        dup = os.dup(fd)
    except OSError:  # out of descriptors
        return -1
    if limit != resource.RLIM_INFINITY and dup >= limit // 2:
        os.close(dup)
        return -1
    return dup


class DirectSocket:
    """A sink's share of the direct path: ``descriptor`` (-1 for none),
    :meth:`watch`, and :meth:`release` once the subscriber has left."""

    __slots__ = ("_transport", "_watch", "descriptor")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._watch: UnsentWatch | None = None
        self.descriptor = -1
        sock = transport.get_extra_info("socket")
        plain = transport.get_extra_info("sslcontext") is None
        if os.name == "posix" and sock is not None and plain:
            self.descriptor = spare_duplicate(sock.fileno())

    def watch(self, on_change: Callable[[bool], None]) -> bool:
        """Call ``on_change(True)`` when the transport starts holding unsent
        bytes and ``on_change(False)`` once it holds none; return whether it
        holds some now."""
        transport = self._transport
        if transport.is_closing():  # gone before the subscriber joined
            self._close()
            return True
        self._watch = UnsentWatch(transport, transport.get_protocol(), on_change, self._close)
        transport.set_protocol(self._watch)
        transport.set_write_buffer_limits(high=0, low=0)  # may pause at once
        return transport.get_write_buffer_size() > 0

    def _close(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1

    def release(self) -> None:
        """Close the duplicate; hand the connection back to aiohttp as it was
        (an event stream's connection may serve more requests)."""
        self._close()
        transport, watch = self._transport, self._watch
        if watch is not None and not transport.is_closing():
            transport.set_protocol(watch.inner)
            transport.set_write_buffer_limits()
        self._watch = None
