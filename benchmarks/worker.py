"""A subscriber worker process: connects its share of the subscribers, then reports.

It connects every subscriber (at most ``CONNECT_CONCURRENCY`` handshakes at a
time), says ``ready`` once each is live or gone, answers ``status``, and on
``finish`` waits until every open subscriber holds every accepted message (or
the deadline), then sends its figures (see :mod:`benchmarks.pipe`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.aiohttp_subscribers import session, subscribe_aiohttp
from benchmarks.dialect import Endpoint
from benchmarks.pipe import receive, run_child, tell
from benchmarks.poll_subscribers import subscribe_raw_poll
from benchmarks.raw_subscribers import subscribe_raw
from benchmarks.subscription import Latencies, Subscription

CONNECT_CONCURRENCY = 64  # handshakes in flight per worker: stays under the listen backlog

Subscribe = Callable[[Subscription, asyncio.Semaphore], Coroutine[Any, Any, None]]


@dataclass
class WorkerJob:
    index: int
    endpoint: Endpoint
    users: list[str]
    total: int  # messages the publisher will send: seq 0 .. total-1
    connect_timeout: float
    lifetime: float  # hard bound on the whole process, seconds
    client: str = "raw"  # "raw" (asyncio.Protocol per subscriber) | "aiohttp"


async def _wait_ready(
    subs: list[Subscription], tasks: list[asyncio.Task[None]], timeout: float
) -> None:
    """Until every subscriber is live or gone, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    for sub, task in zip(subs, tasks, strict=True):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        ready = asyncio.ensure_future(sub.ready.wait())
        await asyncio.wait([ready, task], timeout=left, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()


async def _wait_drained(subs: list[Subscription], expected: int, deadline_ns: int) -> None:
    """Until every open subscriber holds ``expected`` messages, or the deadline."""
    while time.monotonic_ns() < deadline_ns:
        if all(s.received >= expected or s.closed is not None for s in subs):
            return
        await asyncio.sleep(0.02)


def _ready_report(subs: list[Subscription]) -> dict[str, Any]:
    errors = Counter(s.closed for s in subs if not s.ready.is_set() and s.closed is not None)
    return {
        "ready": sum(s.ready.is_set() for s in subs),
        "failed": len(subs) - sum(s.ready.is_set() for s in subs),
        "errors": dict(errors.most_common(5)),
    }


def _result(subs: list[Subscription], lat: Latencies, window_end_ns: int) -> dict[str, Any]:
    return {
        "latencies_ns": lat.all.tobytes(),
        "msg_first_ns": lat.first.tobytes(),
        "msg_last_ns": lat.last.tobytes(),
        "in_window": lat.received_by(window_end_ns),
        "subs": [s.report() for s in subs],
        "seen": [bytes(s.seen) for s in subs],
        "last_ns": max((s.last_ns for s in subs), default=0),
        "pid": os.getpid(),
    }


async def _serve_commands(conn: Connection, subs: list[Subscription], lat: Latencies) -> None:
    """``status`` -> how many are still connected; ``finish`` -> drain, then the result."""
    while True:
        command = await receive(conn)
        if command[0] == "status":
            tell(conn, ("status", sum(s.ready.is_set() and s.closed is None for s in subs)))
        elif command[0] == "finish":
            _, expected, deadline_ns, window_end_ns = command
            await _wait_drained(subs, expected, deadline_ns)
            tell(conn, ("result", _result(subs, lat, window_end_ns)))
            return
        else:
            return


async def _guarded(sub: Subscription, subscribe: Coroutine[Any, Any, None]) -> None:
    """Run one subscriber; an error ends it and is recorded as why it closed."""
    try:
        await subscribe
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if sub.closed is None:
            sub.closed = f"{type(exc).__name__}: {exc}"[:200]


async def _run_subscribers(
    conn: Connection, job: WorkerJob, subs: list[Subscription], lat: Latencies, subscribe: Subscribe
) -> None:
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tasks = [asyncio.create_task(_guarded(s, subscribe(s, sem))) for s in subs]
    try:
        await _wait_ready(subs, tasks, job.connect_timeout)
        tell(conn, ("ready", _ready_report(subs)))
        await _serve_commands(conn, subs, lat)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=5)


async def _worker(conn: Connection, job: WorkerJob) -> None:
    lat = Latencies(job.total)
    subs = [Subscription(u, bytearray(job.total)) for u in job.users]
    at, timeout = job.endpoint, job.connect_timeout
    async with asyncio.timeout(job.lifetime), session(timeout) as http:

        def subscribe(s: Subscription, sem: asyncio.Semaphore) -> Coroutine[Any, Any, None]:
            if job.client == "aiohttp":
                return subscribe_aiohttp(http, at, s, lat, sem)
            if at.transport == "poll":
                return subscribe_raw_poll(at, s, lat, timeout, sem)
            return subscribe_raw(at, s, lat, timeout, sem)

        await _run_subscribers(conn, job, subs, lat, subscribe)


def worker_main(conn: Connection, job: WorkerJob) -> None:
    """Entry point of a subscriber worker process."""
    run_child(_worker(conn, job))
