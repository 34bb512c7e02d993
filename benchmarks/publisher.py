"""The publisher process: stamped messages at a steady rate, over a WebSocket or by POST.

A WebSocket publisher's message counts as accepted when the server fans it
back out to the publisher's own socket; a POST's when it is answered with the
dialect's success status. Up to ``MAX_POSTS_IN_FLIGHT`` POSTs are under way at
once, so a slow answer does not delay the next send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import aiohttp

from benchmarks.dialect import Dialect
from benchmarks.pipe import receive, run_child, tell
from benchmarks.subscription import MARK, parse_stamp, stamp_text

MAX_POSTS_IN_FLIGHT = 256


@dataclass
class PublishJob:
    base_url: str
    dialect: Dialect
    room: str
    via: str  # "ws" | "post"
    rate: float
    total: int
    payload_bytes: int
    confirm_timeout: float
    lifetime: float


@dataclass
class PublishState:
    accepted: bytearray
    errors: Counter[str] = field(default_factory=Counter)
    answered: int = 0  # accepted or refused
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def accept(self, seq: int) -> None:
        if 0 <= seq < len(self.accepted) and not self.accepted[seq]:
            self.accepted[seq] = 1
            self._answer()

    def refuse(self, why: str) -> None:
        self.errors[why] += 1
        self._answer()

    def _answer(self) -> None:
        self.answered += 1
        if self.answered >= len(self.accepted):
            self.settled.set()


async def _read_echoes(ws: aiohttp.ClientWebSocketResponse, state: PublishState) -> None:
    """A message is accepted when the server fans it back out to the sender."""
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            continue
        data: str = msg.data
        i = data.find(MARK)
        if i >= 0:
            state.accept(parse_stamp(data, i + len(MARK), "~")[1])
        elif data.startswith('{"type":"error"'):
            state.refuse(f"ws error {json.loads(data).get('code')}")
    state.errors[f"publisher websocket closed, code {ws.close_code}"] += 1
    state.settled.set()


async def _paced(job: PublishJob, send: Callable[[int], Awaitable[None]]) -> tuple[int, int]:
    """Call ``send(seq)`` at ``job.rate`` per second; return the window in ns."""
    start = time.monotonic_ns()
    for seq in range(job.total):
        delay = (start + seq * 1e9 / job.rate - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        await send(seq)
    return start, time.monotonic_ns()


async def _publish_ws(
    conn: Connection, http: aiohttp.ClientSession, job: PublishJob, state: PublishState
) -> tuple[int, int]:
    url = job.base_url + job.dialect.path("ws", job.room, "pub")
    async with http.ws_connect(url, max_msg_size=0) as ws:
        reader = asyncio.create_task(_read_echoes(ws, state))
        tell(conn, ("ready", None))
        await receive(conn)

        async def send(seq: int) -> None:
            await ws.send_str(job.dialect.send_frame(stamp_text(seq, job.payload_bytes), seq))

        window = await _paced(job, send)
        tell(conn, ("sent", window))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.settled.wait(), job.confirm_timeout)
        reader.cancel()
        return window


async def _post_one(
    http: aiohttp.ClientSession, url: str, seq: int, job: PublishJob, state: PublishState
) -> None:
    body = job.dialect.post_body(stamp_text(seq, job.payload_bytes), seq)
    try:
        async with http.post(url, json=body) as resp:
            await resp.read()
            if resp.status == job.dialect.post_ok:
                state.accept(seq)
            else:
                state.refuse(f"HTTP {resp.status}")
    except aiohttp.ClientError as exc:
        state.refuse(type(exc).__name__)


async def _publish_post(
    conn: Connection, http: aiohttp.ClientSession, job: PublishJob, state: PublishState
) -> tuple[int, int]:
    url = job.dialect.post_url(job.base_url, job.room)
    in_flight = asyncio.Semaphore(MAX_POSTS_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()

    async def one(seq: int) -> None:
        async with in_flight:
            await _post_one(http, url, seq, job, state)

    async def send(seq: int) -> None:
        await in_flight.acquire()  # wait for room before stamping, then hand it over
        in_flight.release()
        task = asyncio.create_task(one(seq))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    tell(conn, ("ready", None))
    await receive(conn)
    window = await _paced(job, send)
    tell(conn, ("sent", window))
    if tasks:
        await asyncio.wait(tasks, timeout=job.confirm_timeout)
    return window


async def _publisher(conn: Connection, job: PublishJob) -> None:
    state = PublishState(bytearray(job.total))
    connector = aiohttp.TCPConnector(limit=MAX_POSTS_IN_FLIGHT)
    async with asyncio.timeout(job.lifetime), aiohttp.ClientSession(connector=connector) as http:
        publish = _publish_ws if job.via == "ws" else _publish_post
        start, end = await publish(conn, http, job, state)
    result = {
        "accepted": bytes(state.accepted),
        "errors": dict(state.errors),
        "window_ns": (start, end),
        "pid": os.getpid(),
    }
    tell(conn, ("result", result))


def publisher_main(conn: Connection, job: PublishJob) -> None:
    """Entry point of the publisher process."""
    run_child(_publisher(conn, job))
