"""A WebSocket's close: one close frame, its code remembered, and the
client's data frames until the socket closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import WebSocketError, WSCloseCode, WSMessage, WSMsgType, web

from .cycles import drop_tracebacks

CLOSE_TIMEOUT = 5.0
# Codes reserved for reporting (RFC 6455 section 7.4.1): never sent in a close
# frame. aiohttp refuses 1005 and 1015 itself, and lets 1006 through.
NEVER_SENT = frozenset({1005, 1006, 1015})


def not_in_a_room() -> None:
    """``Closer.leave_room`` while the socket has no subscriber."""


class Closer:
    """Sends a socket's close frame once and remembers its code (and why, for
    a protocol error): the disconnect line reports the code the client was
    sent."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.code: int | None = None
        self.why: str | None = None
        # Takes the subscriber out of the room: no data frame may follow a
        # close frame, and the room writes to the socket directly.
        self.leave_room: Callable[[], None] = not_in_a_room

    async def close(self, code: int, message: str = "", why: str | None = None) -> None:
        self.leave_room()
        if self.ws.closed:
            return
        self.code = code
        self.why = why or self.why
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.ws.close(code=code, message=message.encode())
        except (TimeoutError, ConnectionError):
            if self.request.transport is not None:
                self.request.transport.abort()
        finally:
            drop_tracebacks(self.ws)

    async def frames(self) -> AsyncIterator[WSMessage]:
        """The client's data frames until the socket closes. A client's close
        is answered (1002 to a code no endpoint may send); a frame aiohttp
        refuses (too big, bad UTF-8, bad framing) was answered by aiohttp with
        the code of its error."""
        ws = self.ws
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                yield msg
                continue
            drop_tracebacks(ws)  # a peer gone: aiohttp's close met the reset
            self.leave_room()  # aiohttp may have sent its close frame already
            if msg.type is WSMsgType.CLOSE:
                unsendable = msg.data in NEVER_SENT
                await self.close(WSCloseCode.PROTOCOL_ERROR if unsendable else WSCloseCode.OK)
            elif msg.type is WSMsgType.ERROR:
                exc = ws.exception()
                if isinstance(exc, WebSocketError):
                    self.code = exc.code
                self.why = f"protocol error: {exc}"
            return
