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
  aiohttp's protocol is then paused whenever the transport holds anything;
  aiohttp waits on that only after 64 KiB of its own writes (pings, close
  frames), so a subscriber's connection behaves as before.

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
    transport starts or stops holding unsent bytes."""

    def __init__(self, inner: asyncio.BaseProtocol, on_change: Callable[[bool], None]) -> None:
        self.inner = inner
        self._on_change = on_change

    def pause_writing(self) -> None:
        self._on_change(True)
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self._on_change(False)
        self.inner.resume_writing()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool | None:
        keep_open: bool | None = self.inner.eof_received()  # type: ignore[attr-defined]
        return keep_open

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)


class DirectSocket:
    """A sink's share of the direct path: ``descriptor`` (-1 for none),
    :meth:`watch`, and :meth:`release` once the subscriber has left."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._watch: UnsentWatch | None = None
        self.descriptor = -1
        sock = transport.get_extra_info("socket")
        plain = transport.get_extra_info("sslcontext") is None
        if os.name == "posix" and sock is not None and plain:
            self.descriptor = os.dup(sock.fileno())

    def watch(self, on_change: Callable[[bool], None]) -> bool:
        """Call ``on_change(True)`` when the transport starts holding unsent
        bytes and ``on_change(False)`` once it holds none; return whether it
        holds some now."""
        transport = self._transport
        self._watch = UnsentWatch(transport.get_protocol(), on_change)
        transport.set_protocol(self._watch)
        transport.set_write_buffer_limits(high=0, low=0)  # may pause at once
        return transport.get_write_buffer_size() > 0

    def release(self) -> None:
        """Close the duplicate; hand the connection back to aiohttp as it was
        (an event stream's connection may serve more requests)."""
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1
        transport, watch = self._transport, self._watch
        if watch is not None and not transport.is_closing():
            transport.set_protocol(watch.inner)
            transport.set_write_buffer_limits()
        self._watch = None
