"""WebSocket: a room (``/rooms/{room}/ws``), and the echo endpoint."""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable

from aiohttp import WebSocketError, WSCloseCode, WSMessage, WSMsgType, web

from ..core.hub import Hub
from ..core.ports import BrokerUnavailable
from ..core.protocol import (
    CLIENT_ID_MAX,
    Draft,
    Event,
    ProtocolError,
    decode_json,
    dumps,
    parse_send,
)
from ..core.room import CloseReason, Subscriber
from ..policy.tokens import TokenError
from .endings import APP_CODES
from .errors import json_error
from .guard import GUARD, Guard, Target
from .masking import masked_only
from .session import Session, SocketSink, session
from .state import CLOSING, HUB, SETTINGS

NAME = "ws"
CLOSE_CODES = {
    CloseReason.SLOW: WSCloseCode.TRY_AGAIN_LATER,  # 1013
    CloseReason.SHUTDOWN: WSCloseCode.GOING_AWAY,  # 1001
    CloseReason.GONE: WSCloseCode.GOING_AWAY,
    **APP_CODES,  # 4000 disconnect, 4001 disconnect and reconnect, 4003 token expired
}
CLOSE_TIMEOUT = 5.0
MAX_IN_FLIGHT = 64  # sends of one socket being stored at once
# Codes reserved for reporting (RFC 6455 section 7.4.1): never sent in a close
# frame. aiohttp refuses 1005 and 1015 itself, and lets 1006 through.
NEVER_SENT = frozenset({1005, 1006, 1015})


class WebSocketWire:
    """A complete unmasked text frame: identical for every subscriber."""

    def encode(self, event: Event) -> bytes:
        payload = event.json.encode()
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 127, n)
        return header + payload


WIRE = WebSocketWire()


def not_in_a_room() -> None:
    """``Closer.leave_room`` while the socket has no subscriber."""


def drop_tracebacks(ws: web.WebSocketResponse) -> None:
    """Keep the error that ended a socket (``ws.exception()``, which says
    why), but not its traceback.

    aiohttp stores the error a close or a heartbeat met writing to a
    connection the peer had already reset (``web_ws.py``, ``close`` and
    ``_handle_ping_pong_exception``), traceback and all. Its frames hold the
    socket (``close``'s ``self``) or the writer that reaches it: a reference
    cycle that kept every connection the peer reset, with its request,
    protocol and transport, until a full garbage collection.
    """
    exc = ws.exception()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__


def unhook_heartbeat(request: web.Request) -> None:
    """Take a socket's heartbeat hook back from its connection's protocol,
    once the handler is done with the socket.

    aiohttp gives the protocol the socket's ``_on_data_received`` (incoming
    bytes put off the next ping, ``web_protocol.py`` ``set_parser``) and
    never takes it back, not even when the connection is lost; the socket
    keeps its request (``WebSocketResponse.write_eof`` does not drop it, as
    ``StreamResponse.write_eof`` does), and the request its protocol. That
    cycle (socket -> request -> protocol -> socket) kept every WebSocket
    connection, however it ended, until a full garbage collection. No public
    call undoes it. Nothing changes on the wire: the hook only moves the
    next ping, and after the handler the socket is closed (no more pings)
    or its connection gone (no more bytes).
    """
    protocol = request.protocol
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None


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


class WebSocketSink(SocketSink):
    """Pre-built frames go straight to the socket, or through its transport."""

    wire = WIRE

    def __init__(self, closer: Closer) -> None:
        super().__init__(closer.request)
        self._closer = closer
        self._closing: set[asyncio.Task[None]] = closer.request.app[CLOSING]

    def close(self, reason: CloseReason, detail: str = "") -> None:
        coro = self._closer.close(CLOSE_CODES[reason], detail or reason.value)
        task = asyncio.get_running_loop().create_task(coro)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def refuse(self, exc: BrokerUnavailable) -> None:
        ws = self._closer.ws
        await send_error(ws, "unavailable", f"history unavailable, reconnect later: {exc}")
        await self._closer.close(WSCloseCode.TRY_AGAIN_LATER, "history unavailable")


def ws_response(request: web.Request) -> web.WebSocketResponse:
    if request.headers.get("Sec-WebSocket-Version", "13") != "13":
        # aiohttp also upgrades the drafts 7 and 8; RFC 6455 section 4.4
        # asks for 426 naming the version spoken.
        raise json_error(
            426,
            "unsupported_version",
            "this server speaks WebSocket version 13 (RFC 6455)",
            **{"Sec-WebSocket-Version": "13"},
        )
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(
        protocols=("realtime",),
        heartbeat=settings.heartbeat,
        max_msg_size=settings.max_frame_bytes,
        compress=False,
        autoclose=False,  # Closer.frames answers a client's close
    )
    try:
        ready = ws.can_prepare(request).ok
    except UnicodeEncodeError:  # aiohttp quoting a non-UTF-8 header in its 400 text
        ready = False
    if not ready:
        raise json_error(400, "not_websocket", "this URL expects a WebSocket upgrade")
    return ws


async def room_socket(request: web.Request) -> web.WebSocketResponse:
    """``GET /rooms/{room}/ws?user=&since=``: join a room over WebSocket."""
    guard = request.app[GUARD]
    guard.check_origin(request)
    target = guard.admit(request, request.query.get("since"))
    ws = ws_response(request)
    closer = Closer(ws, request)
    async with session(request, target, NAME) as s:
        masked_only(request, closer.close)
        try:
            await ws.prepare(request)
            reader = Reader(request, closer, s)
            await s.run(WebSocketSink(closer), reader.serve)
        finally:
            s.code = closer.code
            s.why = closer.why or s.why
            unhook_heartbeat(request)
    return ws


class Reader:
    """The frames a room socket sends: each a message to publish.

    Sends are pipelined where the log keeps call order: the next frame is
    read and its message handed to the log while earlier ones are still
    being committed (at most MAX_IN_FLIGHT), and ids follow frame order.
    """

    def __init__(self, request: web.Request, closer: Closer, s: Session) -> None:
        self.ws = closer.ws
        self.closer = closer
        self.session = s
        self.request = request
        self.hub: Hub = request.app[HUB]
        self.guard: Guard = request.app[GUARD]
        self.target: Target = s.target
        self.max_bytes = request.app[SETTINGS].max_message_bytes
        self.bucket = self.guard.connection_bucket()
        self.in_flight: deque[asyncio.Future[None]] = deque()

    async def serve(self, sub: Subscriber) -> None:
        self.closer.leave_room = sub.detach
        try:
            await self._read()
        finally:
            try:
                if self.in_flight:  # every accepted frame is answered before the socket ends
                    await asyncio.wait(self.in_flight, timeout=CLOSE_TIMEOUT)
            finally:
                # The room detaches the subscriber next. Holding on would
                # keep a cycle (closer -> subscriber -> sink -> closer), and
                # with it the socket, until a full garbage collection.
                self.closer.leave_room = not_in_a_room

    async def _read(self) -> None:
        ws = self.ws
        async for msg in self.closer.frames():
            if msg.type is WSMsgType.TEXT:
                wait = self.guard.take_send(self.request, self.bucket, NAME)
                if wait > 0:
                    await rate_limited(ws, wait, client_id_of(msg.data))
                    continue
                await self.publish(msg.data)
            else:
                await send_error(ws, "unsupported_data", "send JSON text frames, not binary")

    async def publish(self, raw: str) -> None:
        t = self.target
        client_id = None
        try:
            data = decode_json(raw)
            client_id = client_id_in(data)
            if isinstance(data, dict) and data.get("type") == "refresh":
                await self.refresh(data.get("token"))
                return
            draft = parse_send(data, room=t.room, user=t.user, max_bytes=self.max_bytes)
        except ProtocolError as exc:
            await send_error(self.ws, exc.code, exc.detail, client_id)
            return
        if not self.hub.ordered_appends:
            await self._store(draft)
            return
        in_flight = self.in_flight
        in_flight.append(asyncio.ensure_future(self._store(draft)))
        while in_flight and in_flight[0].done():
            in_flight.popleft()
        if len(in_flight) >= MAX_IN_FLIGHT:
            await in_flight.popleft()

    async def _store(self, draft: Draft) -> None:
        try:
            await self.hub.publish(draft)
        except BrokerUnavailable as exc:
            await send_error(self.ws, "unavailable", f"message not stored: {exc}", draft.client_id)

    async def refresh(self, token: object) -> None:
        """``{"type":"refresh","token":…}``: move the connection's expiry."""
        try:
            grant = self.session.expiry.refresh(self.guard.gate, self.target.room, token)
        except TokenError as exc:
            await send_error(self.ws, exc.code, exc.detail)
            return
        await self.ws.send_str(dumps({"type": "refreshed", "exp": int(grant.exp)}))


def client_id_in(data: object) -> str | None:
    """The ``client_id`` a send named, when it is one a reply may echo."""
    if isinstance(data, dict):
        value = data.get("client_id")
        if isinstance(value, str) and len(value) <= CLIENT_ID_MAX and value.isprintable():
            return value
    return None


def client_id_of(raw: str) -> str | None:
    """The ``client_id`` of a frame refused before it was read (rate limit)."""
    try:
        return client_id_in(decode_json(raw))
    except ProtocolError:
        return None


async def rate_limited(
    ws: web.WebSocketResponse, wait: float, client_id: str | None = None
) -> None:
    await send_error(ws, "rate_limited", f"too many messages; retry in {wait:.1f} s", client_id)


async def send_error(
    ws: web.WebSocketResponse, code: str, detail: str, client_id: str | None = None
) -> None:
    """An error event; one that answers a send carries the send's ``client_id``."""
    if not ws.closed:
        error = {"type": "error", "code": code, "detail": detail}
        if client_id is not None:
            error["client_id"] = client_id
        await ws.send_str(dumps(error))
