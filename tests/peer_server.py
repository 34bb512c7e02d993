"""A minimal server with the reference peers' routes, for ``fanout --peer python``.

One room: ``GET /ws`` (a text frame ``{"text": …}`` is broadcast to every
socket as ``{"id", "user", "text", "ts"}``), ``GET /sse`` (the same JSON as
``data:`` lines), ``POST /send`` (200), ``GET /health``. Run as
``python tests/peer_server.py PORT [--uvloop]``; binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time

from aiohttp import WSMsgType, web

sockets: set[web.WebSocketResponse] = set()
streams: set[web.StreamResponse] = set()
ids = itertools.count(1)


async def broadcast(text: str) -> None:
    out = json.dumps({"id": next(ids), "user": "bench", "text": text, "ts": time.time()})
    frame = f"data: {out}\r\n\r\n".encode()  # CRLF line ends, as aiohttp-sse writes
    for ws in list(sockets):
        await ws.send_str(out)
    for resp in list(streams):
        await resp.write(frame)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    sockets.add(ws)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await broadcast(str(json.loads(msg.data).get("text", "")))
    finally:
        sockets.discard(ws)
    return ws


async def events(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    streams.add(resp)
    try:
        await asyncio.Event().wait()  # until the client goes away
    finally:
        streams.discard(resp)
    return resp


async def send(request: web.Request) -> web.Response:
    await broadcast(str((await request.json()).get("text", "")))
    return web.json_response({"ok": True})


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_get("/ws", websocket)
    app.router.add_get("/sse", events)
    app.router.add_post("/send", send)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, handler_cancellation=True)


if __name__ == "__main__":
    main()
