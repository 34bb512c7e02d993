"""RFC 6455 section 5.1 at the edge: a server must close the connection when
a client's frame is not masked.

aiohttp's frame reader accepts unmasked frames (see docs/websocket.md), so
before the upgrade the socket's protocol is wrapped in :class:`MaskedOnly`:
it follows frame boundaries in the bytes on their way to aiohttp and, at the
first unmasked frame, stops passing bytes on and has the socket closed with
1002. Everything else it hands through unchanged.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSCloseCode, web

from .state import CLOSING

EXTENDED = {126: 2, 127: 8}  # length codes and the bytes of the length that follows


class MaskedOnly(asyncio.Protocol):
    def __init__(self, inner: asyncio.Protocol, on_unmasked: Callable[[], None]) -> None:
        self._inner = inner
        self._on_unmasked = on_unmasked
        self._head = bytearray()  # the current frame's header, while incomplete
        self._skip = 0  # mask key and payload of the current frame still to come
        self._broken = False

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return
        good = self._masked_prefix(data)
        if good:
            self._inner.data_received(data[:good] if good < len(data) else data)
        if good < len(data):
            self._broken = True
            self._on_unmasked()

    def _masked_prefix(self, data: bytes) -> int:
        """How many bytes of ``data`` come before the first unmasked frame."""
        head = self._head
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            start = pos if not head else 0
            size = 2 if len(head) < 2 else 2 + EXTENDED.get(head[1] & 0x7F, 0)
            take = min(size - len(head), end - pos)
            head += data[pos : pos + take]
            pos += take
            if len(head) >= 2 and not head[1] & 0x80:
                return start
            if len(head) < 2 or len(head) < 2 + EXTENDED.get(head[1] & 0x7F, 0):
                continue
            code = head[1] & 0x7F
            if code == 126:
                length = struct.unpack_from("!H", head, 2)[0]
            elif code == 127:
                length = struct.unpack_from("!Q", head, 2)[0]
            else:
                length = code
            self._skip = 4 + length  # the mask key, then the payload
            head.clear()
        return end

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


Close = Callable[[int, str, str | None], Coroutine[Any, Any, None]]


def masked_only(request: web.Request, close: Close) -> None:
    """Close the socket with 1002 (``close(code, message, why)``, awaited in a
    task shutdown waits for) at the first unmasked frame from the client."""
    transport = request.transport
    if transport is None:
        return
    closing = request.app[CLOSING]

    def unmasked() -> None:
        coro = close(WSCloseCode.PROTOCOL_ERROR, "frames must be masked", "unmasked frame")
        task = asyncio.get_running_loop().create_task(coro)
        closing.add(task)
        task.add_done_callback(closing.discard)

    inner = transport.get_protocol()
    assert isinstance(inner, asyncio.Protocol)
    transport.set_protocol(MaskedOnly(inner, unmasked))
