"""The WebSocket link: ``GET /rooms/{room}/ws?user=&since=``."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from yarl import URL

from .errors import Refused
from .link import Dial, Ending, Handler, Reason, ending_for_close, refusal

# Statuses whose reason only the JSON body tells (a bad id, a token problem).
_PROBED = (400, 401, 403, 404)


async def run_ws(dial: Dial, handler: Handler) -> Ending:
    url = dial.url("ws", since=dial.since)
    try:
        # A server that accepts the connection but never answers counts as down.
        async with asyncio.timeout(dial.idle_timeout):
            ws = await dial.session.ws_connect(
                url,
                protocols=("realtime",),
                headers=dial.headers(),
                # Our own pings: a vanished server is noticed within 1.5 of
                # these, whatever the server's --heartbeat.
                heartbeat=dial.idle_timeout / 2,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )
    except aiohttp.WSServerHandshakeError as exc:
        raise await _handshake_refusal(dial, url, exc) from None
    async with ws:
        handler.opened(ws.send_str)
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    ending = await handler.received(data)
                    if ending is not None:
                        return ending
            elif msg.type is aiohttp.WSMsgType.CLOSE:
                return ending_for_close(msg.data, msg.extra or "")
            elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return ending_for_close(ws.close_code, "connection lost")
            elif msg.type is aiohttp.WSMsgType.ERROR:
                return Ending(Reason.DROPPED, f"protocol error: {ws.exception()}")


async def _handshake_refusal(dial: Dial, url: URL, exc: aiohttp.WSServerHandshakeError) -> Refused:
    """aiohttp keeps no body of a failed upgrade: ask again without one to
    read the JSON error (the checks run before the upgrade)."""
    plain = Refused(f"http_{exc.status}", exc.message, exc.status)
    if exc.status not in _PROBED:
        return plain
    async with dial.session.get(url, headers=dial.headers()) as resp:
        if resp.status in _PROBED:
            answer = await refusal(resp)
            if answer.code != "not_websocket":
                return answer
    return plain
