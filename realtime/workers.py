"""``--workers N``: the parent forks N workers that each run their own event
loop and share the port (``SO_REUSEPORT``); rooms meet in the Redis broker.
The parent forwards SIGTERM/SIGINT, reports a worker that dies and starts a
new one, and gives up if a worker fails before it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent
from types import FrameType

from aiohttp import web

from .app import create_app
from .backends import is_redis_url
from .server import serve
from .settings import Settings

STOP_WAIT = 8.0  # seconds workers get to stop before they are killed

log = logging.getLogger("realtime")


def check_workers(settings: Settings) -> None:
    if settings.workers < 1:
        raise SystemExit("realtime: --workers must be at least 1")
    if settings.workers > 1 and not is_redis_url(settings.broker):
        raise SystemExit(
            f"realtime: --workers {settings.workers} needs a Redis broker "
            "(--broker redis://host:port/db, redis-sentinel://… or redis-cluster://…): "
            f"with --broker {settings.broker} each process would have rooms of its own"
        )


def _worker(settings: Settings, ready: MpEvent, parent: int) -> None:
    """One worker process: its own event loop, the shared port."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    app = create_app(settings)

    async def report_ready(app: web.Application) -> None:
        ready.set()

    async def orphan_watch(app: web.Application) -> AsyncIterator[None]:
        async def watch() -> None:
            while True:
                await asyncio.sleep(1.0)
                if os.getppid() != parent:
                    break
            log.warning("worker pid=%d: parent gone, stopping", os.getpid())
            os.kill(os.getpid(), signal.SIGTERM)

        task = asyncio.get_running_loop().create_task(watch())
        yield
        task.cancel()

    app.on_startup.append(report_ready)  # after the broker has started
    app.cleanup_ctx.append(orphan_watch)
    serve(settings, reuse_port=True, app=app)


@dataclass
class Worker:
    slot: int
    proc: BaseProcess
    ready: MpEvent
    started: float


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (for ``--port 0``; the tests and benchmarks too)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def run_workers(settings: Settings) -> int:
    """Fork ``settings.workers`` workers and watch them; return the exit code."""
    if settings.port == 0:
        settings = replace(settings, port=free_port(settings.host))
    ctx = multiprocessing.get_context("fork")
    parent = os.getpid()
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def spawn(slot: int) -> Worker:
        ready = ctx.Event()
        proc = ctx.Process(
            target=_worker, args=(settings, ready, parent), name=f"realtime-worker-{slot}"
        )
        proc.start()
        return Worker(slot, proc, ready, time.monotonic())

    log.info(
        "realtime starting %d workers on http://%s:%d broker=%s",
        settings.workers,
        settings.host,
        settings.port,
        settings.broker,
    )
    workers = [spawn(slot) for slot in range(settings.workers)]
    code = 0
    while not stopping:
        multiprocessing.connection.wait([w.proc.sentinel for w in workers], timeout=0.5)
        for i, w in enumerate(workers):
            if w.proc.is_alive() or stopping:
                continue
            exit_code = w.proc.exitcode
            how = (
                f"killed by signal {-exit_code}"
                if exit_code is not None and exit_code < 0
                else f"exit code {exit_code}"
            )
            if not w.ready.is_set():
                log.error(
                    "worker %d (pid %s) failed to start (%s); stopping all workers",
                    w.slot,
                    w.proc.pid,
                    how,
                )
                code = exit_code if exit_code and exit_code > 0 else 1
                stopping.append(0)
                break
            log.error("worker %d (pid %s) died (%s); starting a new one", w.slot, w.proc.pid, how)
            workers[i] = spawn(w.slot)
    for w in workers:
        if w.proc.is_alive() and w.proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    for w in workers:
        w.proc.join(max(0.0, deadline - time.monotonic()))
        if w.proc.is_alive():
            log.warning("worker %d (pid %s) did not stop in time; killing it", w.slot, w.proc.pid)
            w.proc.kill()
            w.proc.join(5.0)
    log.info("realtime stopped (%d workers)", len(workers))
    return code
