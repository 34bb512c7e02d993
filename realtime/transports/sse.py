"""Server-Sent Events: the stream of a room.

aiohttp-sse's ``EventSourceResponse`` sets the headers, pings and detects a
stalled peer; the event blocks themselves are encoded once per event (they
are the same for every subscriber) and written as HTTP chunks directly, so a
delivery costs one buffer write instead of a per-subscriber ``send()``.
"""

from __future__ import annotations

from aiohttp import HttpVersion11, web
from aiohttp_sse import EventSourceResponse

from ..broker import BrokerUnavailable, Member
from ..protocol import Event
from ..room import CloseReason
from .common import HUB, SETTINGS, ConnLog, Target, json_error, socket_transport
from .guard import GUARD

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


class SseSink:
    wire = WIRE

    def __init__(self, resp: EventSourceResponse, request: web.Request) -> None:
        self._resp = resp
        self._transport = socket_transport(request)
        self.close_reason: CloseReason | None = None

    def write(self, data: bytes) -> int:
        t = self._transport
        if t.is_closing():
            raise ConnectionResetError("event stream closed")
        t.write(data)
        return t.get_write_buffer_size()

    def close(self, reason: CloseReason) -> None:
        if self.close_reason is not None:
            return
        self.close_reason = reason
        if reason is CloseReason.SLOW:
            # The peer is not reading: a graceful end would wait behind the
            # unsent backlog, so cut the connection. EventSource reconnects
            # with Last-Event-ID and resumes.
            self._transport.abort()
        self._resp.stop_streaming()


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
    guard = request.app[GUARD]
    target = guard.admit(request, since)
    async with guard.connection(request):
        return await _stream(request, target)


async def _stream(request: web.Request, target: Target) -> EventSourceResponse:
    hub = request.app[HUB]
    settings = request.app[SETTINGS]
    # A ping goes out at most one interval after a peer vanished; the kernel
    # aborts the connection when it is still unacknowledged one interval
    # later (TCP_USER_TIMEOUT): a dead peer is gone within two intervals.
    resp = EventSourceResponse(
        ping_interval=settings.heartbeat, send_timeout=settings.heartbeat, sep="\n"
    )
    await resp.prepare(request)
    await resp.write(b"retry: %d\n\n" % RETRY_MS)  # also sends the headers
    with ConnLog("sse", target, request.remote) as conn:
        sink = SseSink(resp, request)
        member = Member(conn.id, target.user, "sse")
        try:
            async with hub.join(target.room, member, sink, target.since):
                await resp.wait()
            if sink.close_reason is not None:
                conn.why = sink.close_reason.name.lower()
        except BrokerUnavailable as exc:
            conn.why = f"history unavailable: {exc}"
    return resp
