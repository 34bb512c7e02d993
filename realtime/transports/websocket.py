"""WebSocket handlers: a room, and the echo endpoint."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import MutableSet

from aiohttp import WSCloseCode, WSMsgType, web

from ..broker import BrokerUnavailable, Member
from ..hub import Hub
from ..protocol import Event, ProtocolError, dumps, parse_send_json
from ..room import CloseReason
from .common import CLOSING, HUB, SETTINGS, ConnLog, Target, json_error, socket_transport
from .guard import GUARD

CLOSE_CODES = {
    CloseReason.SLOW: WSCloseCode.TRY_AGAIN_LATER,  # 1013
    CloseReason.SHUTDOWN: WSCloseCode.GOING_AWAY,  # 1001
    CloseReason.GONE: WSCloseCode.GOING_AWAY,
}
CLOSE_TIMEOUT = 5.0


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
    """Writes pre-built frames straight to the socket's transport."""

    wire = WIRE

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._transport = socket_transport(request)
        self.close_reason: CloseReason | None = None
        self._closer: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = request.app[CLOSING]

    def write(self, data: bytes) -> int:
        t = self._transport
        if t.is_closing() or self._ws.closed:
            raise ConnectionResetError("websocket closed")
        t.write(data)
        return t.get_write_buffer_size()

    def close(self, reason: CloseReason) -> None:
        if self._closer is not None:
            return
        self.close_reason = reason
        self._closer = task = asyncio.get_running_loop().create_task(self._close(reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, reason: CloseReason) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close(code=CLOSE_CODES[reason], message=reason.value.encode())
        except (TimeoutError, ConnectionError):
            self._transport.abort()


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
    async with guard.connection(request):
        await ws.prepare(request)
        await _serve_room(request, ws, target)
    return ws


async def _serve_room(request: web.Request, ws: web.WebSocketResponse, target: Target) -> None:
    hub = request.app[HUB]
    guard = request.app[GUARD]
    max_bytes = request.app[SETTINGS].max_message_bytes
    bucket = guard.connection_bucket()
    with ConnLog("ws", target, request.remote) as conn:
        sink = WebSocketSink(ws, request)
        member = Member(conn.id, target.user, "ws")
        try:
            async with hub.join(target.room, member, sink, target.since):
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT:
                        wait = guard.take_send(request, bucket, "ws")
                        if wait > 0:
                            await _rate_limited(ws, wait)
                            continue
                        await _handle_text(ws, hub, msg.data, target, max_bytes)
                    elif msg.type is WSMsgType.BINARY:
                        await _send_error(
                            ws, "unsupported_data", "send JSON text frames, not binary"
                        )
                    elif msg.type is WSMsgType.ERROR:
                        conn.why = f"protocol error: {ws.exception()}"
                        break
            if sink.close_reason is not None:
                conn.why = sink.close_reason.name.lower()
            elif ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
                conn.why = "message too big"
        except BrokerUnavailable as exc:
            conn.why = f"history unavailable: {exc}"
            await _send_error(ws, "unavailable", f"history unavailable, reconnect later: {exc}")
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"history unavailable")
        finally:
            conn.code = ws.close_code


async def _handle_text(
    ws: web.WebSocketResponse, hub: Hub, raw: str, target: Target, max_bytes: int
) -> None:
    try:
        draft = parse_send_json(raw, room=target.room, user=target.user, max_bytes=max_bytes)
        await hub.publish(draft)
    except ProtocolError as exc:
        await _send_error(ws, exc.code, exc.detail)
    except BrokerUnavailable as exc:
        await _send_error(ws, "unavailable", f"message not stored: {exc}")


async def _rate_limited(ws: web.WebSocketResponse, wait: float) -> None:
    await _send_error(ws, "rate_limited", f"too many messages; retry in {wait:.1f} s")


async def _send_error(ws: web.WebSocketResponse, code: str, detail: str) -> None:
    if not ws.closed:
        await ws.send_str(dumps({"type": "error", "code": code, "detail": detail}))


async def echo_socket(
    request: web.Request, registry: MutableSet[web.WebSocketResponse]
) -> web.WebSocketResponse:
    """``GET /ws/echo``: replies ``ECHO: <text>`` to the sender only."""
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
                    wait = guard.take_send(request, bucket, "ws")
                    if wait > 0:
                        await _rate_limited(ws, wait)
                        continue
                    await ws.send_str(f"ECHO: {msg.data}")
                elif msg.type is WSMsgType.BINARY:
                    await _send_error(ws, "unsupported_data", "send text frames, not binary")
        finally:
            registry.discard(ws)
    return ws
