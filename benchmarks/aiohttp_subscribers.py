"""Subscribers on aiohttp's client (``--client aiohttp``): WebSocket, SSE, long-polling.

What a typical Python client costs per delivery: the receive time is taken
per WebSocket message, per SSE read, per poll answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import aiohttp

from benchmarks.dialect import Endpoint
from benchmarks.poll_subscribers import HOLD, answer_next, poll_path
from benchmarks.rawclient import complete_events
from benchmarks.subscription import JOIN_B, MARK, MARK_B, Latencies, Subscription


def session(connect_timeout: float) -> aiohttp.ClientSession:
    """One session per worker process, no cap on its connections."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=None)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


@dataclass
class AiohttpSubscriber:
    """One subscriber; :meth:`websocket` and :meth:`event_stream` run until the stream ends.

    Without ``join_event`` it is ready once the server answered.
    """

    http: aiohttp.ClientSession
    sub: Subscription
    lat: Latencies
    join_event: bool

    async def websocket(self, url: str, sem: asyncio.Semaphore) -> None:
        sub = self.sub
        async with sem:
            ws = await self.http.ws_connect(url, max_msg_size=0, autoping=True)
        if not self.join_event:
            sub.ready.set()
        try:
            async for msg in ws:
                now = time.monotonic_ns()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    data: str = msg.data
                    if MARK in data:
                        sub.scan(data, MARK, "~", now, self.lat)
                    elif not sub.ready.is_set():
                        sub.check_join(data)
            sub.closed = f"websocket closed by server, code {ws.close_code}"
        finally:
            await ws.close()

    async def poll(self, at: Endpoint, sem: asyncio.Semaphore) -> None:
        """Long-polling, as :mod:`benchmarks.poll_subscribers` describes; until a request fails."""
        sub = self.sub
        since: str | None = "0"
        hold = 0
        while True:
            url = at.base_url + poll_path(at, sub.user, since, hold)
            async with sem if hold == 0 else contextlib.nullcontext(), self.http.get(url) as resp:
                body = await resp.read()
                now = time.monotonic_ns()
                if resp.status != 200:
                    sub.closed = f"HTTP {resp.status}"
                    return
            if MARK_B in body:
                sub.scan(body, MARK_B, b"~", now, self.lat)
            sub.ready.set()
            since, hold = answer_next(body), HOLD

    async def event_stream(self, url: str, sem: asyncio.Semaphore) -> None:
        sub = self.sub
        async with sem:
            resp = await self.http.get(url, headers={"Accept": "text/event-stream"})
        try:
            if resp.status != 200:
                sub.closed = f"HTTP {resp.status}"
                return
            if not self.join_event:
                sub.ready.set()
            buf = b""
            async for chunk in resp.content.iter_any():
                now = time.monotonic_ns()
                buf += chunk
                end = complete_events(buf)
                if not end:
                    continue
                block, buf = buf[:end], buf[end:]
                if not sub.ready.is_set() and JOIN_B in block:
                    sub.check_sse_joins(block)
                sub.scan(block, MARK_B, b"~", now, self.lat)
            sub.closed = "event stream ended by server"
        finally:
            resp.close()


async def subscribe_aiohttp(
    http: aiohttp.ClientSession,
    at: Endpoint,
    sub: Subscription,
    lat: Latencies,
    sem: asyncio.Semaphore,
) -> None:
    """One aiohttp subscriber, from connect to the end of its stream."""
    client = AiohttpSubscriber(http, sub, lat, at.dialect.join_event)
    if at.transport == "poll":
        await client.poll(at, sem)
    else:
        stream = client.websocket if at.transport == "ws" else client.event_stream
        await stream(at.base_url + at.path(sub.user), sem)
