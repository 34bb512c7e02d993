"""WebSocket: a room (``/rooms/{room}/ws``), and the echo endpoint."""

from __future__ import annotations

import asyncio
import struct
from collections import deque

from aiohttp import WSCloseCode, WSMsgType, web

from ..core.hub import Hub
from ..core.ports import BrokerUnavailable
from ..core.protocol import Draft, Event, ProtocolError, dumps, parse_send_json
from ..core.room import CloseReason, Subscriber
from .errors import json_error
from .guard import GUARD, Guard, Target
from .session import Session, session, socket_transport
from .state import CLOSING, ECHO_SOCKETS, HUB, SETTINGS

NAME = "ws"
CLOSE_CODES = {
    CloseReason.SLOW: WSCloseCode.TRY_AGAIN_LATER,  # 1013
    CloseReason.SHUTDOWN: WSCloseCode.GOING_AWAY,  # 1001
    CloseReason.GONE: WSCloseCode.GOING_AWAY,
}
CLOSE_TIMEOUT = 5.0
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


class WebSocketSink:
    """Pre-built frames go straight to the socket's transport."""

    wire = WIRE

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._transport = self.writer = socket_transport(request)
        self._closing: set[asyncio.Task[None]] = request.app[CLOSING]

    def close(self, reason: CloseReason) -> None:
        task = asyncio.get_running_loop().create_task(self._close(reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, reason: CloseReason) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close(code=CLOSE_CODES[reason], message=reason.value.encode())
        except (TimeoutError, ConnectionError):
            self._transport.abort()

    async def refuse(self, exc: BrokerUnavailable) -> None:
        await send_error(self._ws, "unavailable", f"history unavailable, reconnect later: {exc}")
        await self._ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"history unavailable")


def _ws_response(request: web.Request) -> web.WebSocketResponse:
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(
        protocols=("realtime",),
        heartbeat=settings.heartbeat,
        max_msg_size=settings.max_frame_bytes,
        compress=False,
    )
    if not ws.can_prepare(request).ok:
        raise json_error(400, "not_websocket", "this URL expects a WebSocket upgrade")
    return ws


async def room_socket(request: web.Request) -> web.WebSocketResponse:
    """``GET /rooms/{room}/ws?user=&since=``: join a room over WebSocket."""
    guard = request.app[GUARD]
    guard.check_origin(request)
    target = guard.admit(request, request.query.get("since"))
    ws = _ws_response(request)
    async with session(request, target, NAME) as s:
        await ws.prepare(request)
        try:
            await s.run(WebSocketSink(ws, request), Reader(request, ws, s).serve)
        finally:
            s.code = ws.close_code
    return ws


class Reader:
    """The frames a room socket sends: each a message to publish.

    Sends are pipelined where the log keeps call order: the next frame is
    read and its message handed to the log while earlier ones are still
    being committed (at most MAX_IN_FLIGHT), and ids follow frame order.
    """

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, s: Session) -> None:
        self.ws = ws
        self.session = s
        self.request = request
        self.hub: Hub = request.app[HUB]
        self.guard: Guard = request.app[GUARD]
        self.target: Target = s.target
        self.max_bytes = request.app[SETTINGS].max_message_bytes
        self.bucket = self.guard.connection_bucket()
        self.in_flight: deque[asyncio.Future[None]] = deque()

    async def serve(self, sub: Subscriber) -> None:
        try:
            await self._read()
        finally:
            if self.in_flight:  # every accepted frame is answered before the socket ends
                await asyncio.wait(self.in_flight, timeout=CLOSE_TIMEOUT)

    async def _read(self) -> None:
        ws = self.ws
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                wait = self.guard.take_send(self.request, self.bucket, NAME)
                if wait > 0:
                    await rate_limited(ws, wait)
                    continue
                await self.publish(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await send_error(ws, "unsupported_data", "send JSON text frames, not binary")
            elif msg.type is WSMsgType.ERROR:
                self.session.why = f"protocol error: {ws.exception()}"
                break
        if ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
            self.session.why = "message too big"

    async def publish(self, raw: str) -> None:
        t = self.target
        try:
            draft = parse_send_json(raw, room=t.room, user=t.user, max_bytes=self.max_bytes)
        except ProtocolError as exc:
            await send_error(self.ws, exc.code, exc.detail)
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
            await send_error(self.ws, "unavailable", f"message not stored: {exc}")


async def rate_limited(ws: web.WebSocketResponse, wait: float) -> None:
    await send_error(ws, "rate_limited", f"too many messages; retry in {wait:.1f} s")


async def send_error(ws: web.WebSocketResponse, code: str, detail: str) -> None:
    if not ws.closed:
        await ws.send_str(dumps({"type": "error", "code": code, "detail": detail}))


async def echo_socket(request: web.Request) -> web.WebSocketResponse:
    """``GET /ws/echo``: replies ``ECHO: <text>`` to the sender only."""
    registry = request.app[ECHO_SOCKETS]
    guard = request.app[GUARD]
    guard.check_origin(request)
    ws = _ws_response(request)
    bucket = guard.connection_bucket()
    async with guard.connection(request):
        await ws.prepare(request)
        registry.add(ws)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    wait = guard.take_send(request, bucket, NAME)
                    if wait > 0:
                        await rate_limited(ws, wait)
                        continue
                    await ws.send_str(f"ECHO: {msg.data}")
                elif msg.type is WSMsgType.BINARY:
                    await send_error(ws, "unsupported_data", "send text frames, not binary")
        finally:
            registry.discard(ws)
    return ws
