"""Server-Sent Events: the stream of a room (``/rooms/{room}/events``).

aiohttp-sse's ``EventSourceResponse`` sets the headers, pings and detects a
stalled peer; the event blocks themselves are encoded once per event (they
are the same for every subscriber) and written as HTTP chunks directly, so a
delivery costs one buffer write instead of a per-subscriber ``send()``.
"""

from __future__ import annotations

from aiohttp import HttpVersion11, web
from aiohttp_sse import EventSourceResponse

from ..core.ports import BrokerUnavailable
from ..core.protocol import Event
from ..core.room import CloseReason, Subscriber
from .endings import final_event
from .errors import json_error
from .guard import GUARD
from .session import SocketSink, session
from .state import SETTINGS

NAME = "sse"
RETRY_MS = 1000


class SseWire:
    """``id:``/``event:``/``data:`` block (JSON never contains a newline),
    already framed as one HTTP chunk: the same bytes for every subscriber,
    and several of them joined are still a valid chunked body."""

    def encode(self, event: Event) -> bytes:
        head = f"id: {event.id}\n" if event.id is not None else ""
        block = f"{head}event: {event.kind}\ndata: {event.json}\n\n".encode()
        return b"%x\r\n%b\r\n" % (len(block), block)


WIRE = SseWire()


class SseSink(SocketSink):
    wire = WIRE

    def __init__(self, resp: EventSourceResponse, request: web.Request) -> None:
        # Chunks go straight to the socket (or its transport): the response
        # is prepared, and the subscriber is detached before it ends.
        super().__init__(request)
        self._resp = resp
        self._transport = self.writer

    def close(self, reason: CloseReason, detail: str = "") -> None:
        final = final_event(reason, detail)
        if final is not None and not self._transport.is_closing():
            self._transport.write(final.encoded(WIRE))  # then the stream ends
        if reason is CloseReason.SLOW:
            # The peer is not reading: a graceful end would wait behind the
            # unsent backlog, so cut the connection. EventSource reconnects
            # with Last-Event-ID and resumes.
            self._transport.abort()
        self._resp.stop_streaming()

    async def refuse(self, exc: BrokerUnavailable) -> None:
        """The stream ends; EventSource retries after ``retry:``."""


async def room_events(request: web.Request) -> EventSourceResponse:
    """``GET /rooms/{room}/events``: the room as an SSE stream.

    A reconnecting EventSource sends ``Last-Event-ID``, which wins over the
    ``since`` of the URL it reconnects to.
    """
    if request.version < HttpVersion11:
        # An unchunked stream could not be told apart from a broken one; a
        # proxy in front needs `proxy_http_version 1.1`.
        raise json_error(505, "http_version", "event streams need HTTP/1.1")
    since = request.headers.get("Last-Event-ID") or request.query.get("since")
    target = request.app[GUARD].admit(request, since)
    settings = request.app[SETTINGS]
    async with session(request, target, NAME) as s:
        # A ping goes out at most one interval after a peer vanished; the
        # kernel aborts the connection when it is still unacknowledged one
        # interval later (TCP_USER_TIMEOUT): a dead peer is gone within two.
        resp = EventSourceResponse(
            ping_interval=settings.heartbeat, send_timeout=settings.heartbeat, sep="\n"
        )
        await resp.prepare(request)
        await resp.write(b"retry: %d\n\n" % RETRY_MS)  # also sends the headers

        async def serve(sub: Subscriber) -> None:
            await resp.wait()

        await s.run(SseSink(resp, request), serve)
    return resp
