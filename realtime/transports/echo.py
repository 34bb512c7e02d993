"""``GET /ws/echo``: a WebSocket that answers its sender only, for trying a
client or a proxy without a room."""

from __future__ import annotations

from aiohttp import WSMsgType, web

from .closer import Closer
from .cycles import unhook_heartbeat
from .guard import GUARD
from .masking import masked_only
from .state import ECHO_SOCKETS
from .websocket import NAME, rate_limited, send_error, ws_response


async def echo_socket(request: web.Request) -> web.WebSocketResponse:
    """``GET /ws/echo``: replies ``ECHO: <text>`` to the sender only."""
    registry = request.app[ECHO_SOCKETS]
    guard = request.app[GUARD]
    guard.check_origin(request)
    ws = ws_response(request)
    closer = Closer(ws, request)
    bucket = guard.connection_bucket()
    async with guard.connection(request):
        masked_only(request, closer.close)
        try:
            await ws.prepare(request)
            registry.add(ws)
            async for msg in closer.frames():
                if msg.type is WSMsgType.TEXT:
                    wait = guard.take_send(request, bucket, NAME)
                    if wait > 0:
                        await rate_limited(ws, wait)
                        continue
                    await ws.send_str(f"ECHO: {msg.data}")
                else:
                    await send_error(ws, "unsupported_data", "send text frames, not binary")
        finally:
            registry.discard(ws)
            unhook_heartbeat(request)
    return ws
