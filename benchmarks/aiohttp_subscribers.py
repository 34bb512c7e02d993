"""Subscribers on aiohttp's WebSocket client and streaming responses (``--client aiohttp``).

What a typical Python client costs per delivery: the receive time is taken
per WebSocket message, per SSE read, per poll answer.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from benchmarks.dialect import Dialect
from benchmarks.subscription import JOIN_B, MARK, MARK_B, Latencies, Subscription


def session(connect_timeout: float) -> aiohttp.ClientSession:
    """One session per worker process, no cap on its connections."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=None)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


async def _ws_stream(
    http: aiohttp.ClientSession,
    url: str,
    sub: Subscription,
    sem: asyncio.Semaphore,
    lat: Latencies,
    join_event: bool,
) -> None:
    async with sem:
        ws = await http.ws_connect(url, max_msg_size=0, autoping=True)
    if not join_event:
        sub.ready.set()
    try:
        async for msg in ws:
            now = time.monotonic_ns()
            if msg.type is aiohttp.WSMsgType.TEXT:
                data: str = msg.data
                if MARK in data:
                    sub.scan(data, MARK, "~", now, lat)
                elif not sub.ready.is_set():
                    sub.check_join(data)
        sub.closed = f"websocket closed by server, code {ws.close_code}"
    finally:
        await ws.close()


async def _sse_stream(
    http: aiohttp.ClientSession,
    url: str,
    sub: Subscription,
    sem: asyncio.Semaphore,
    lat: Latencies,
    join_event: bool,
) -> None:
    async with sem:
        resp = await http.get(url, headers={"Accept": "text/event-stream"})
    try:
        if resp.status != 200:
            sub.closed = f"HTTP {resp.status}"
            return
        if not join_event:
            sub.ready.set()
        buf = b""
        async for chunk in resp.content.iter_any():
            now = time.monotonic_ns()
            buf += chunk
            end = buf.rfind(b"\n\n")
            if end < 0:
                continue
            block, buf = buf[:end], buf[end + 2 :]
            if not sub.ready.is_set() and JOIN_B in block:
                sub.check_sse_joins(block)
            sub.scan(block, MARK_B, b"~", now, lat)
        sub.closed = "event stream ended by server"
    finally:
        resp.close()


async def subscribe_aiohttp(
    http: aiohttp.ClientSession,
    base_url: str,
    dialect: Dialect,
    transport: str,
    room: str,
    sub: Subscription,
    lat: Latencies,
    sem: asyncio.Semaphore,
) -> None:
    """One aiohttp subscriber, from connect to the end of its stream."""
    url = base_url + dialect.path(transport, room, sub.user)
    stream = _ws_stream if transport == "ws" else _sse_stream
    try:
        await stream(http, url, sub, sem, lat, dialect.join_event)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        sub.closed = f"{type(exc).__name__}: {exc}"[:200]
