"""WebSocket: a room (``/rooms/{room}/ws``), and the echo endpoint."""

from __future__ import annotations

import asyncio
import struct
from collections import deque

from aiohttp import WSCloseCode, WSMsgType, web

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
from .closer import CLOSE_TIMEOUT, Closer, not_in_a_room
from .cycles import unhook_heartbeat
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
MAX_IN_FLIGHT = 64  # sends of one socket being stored at once


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
