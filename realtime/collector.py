"""Garbage collection for a server that holds many long-lived connections.

CPython's cyclic collector pauses the whole process for a pass over every
tracked object of its oldest generation. A connection holds about a hundred
such objects, so at 10,000 connections one pass takes most of a second, and
it comes whenever that generation has grown by a quarter: after a wave of
connections, in the middle of a fan-out. :class:`Collector` paces it as Go's
collector is paced (``GOGC``), by the heap's growth:

- After every pass over the oldest generation, what survived it is *frozen*
  (``gc.freeze``): moved where automatic passes do not look. Each pass then
  covers only what was allocated since the last one: short, however many
  connections are open.
- Frozen objects are still freed by reference counting, as they would be
  anyway; a connection that ends is (``transports/cycles.py``). What
  reference counting cannot free (cycles) waits for a *sweep*: unfreeze,
  one full pass, freeze again. A sweep runs when the heap (allocated blocks,
  or the resident size) has grown ``growth`` times since the last sweep and
  by at least ``floor``, checked every second: unreclaimed cycles never
  hold more than that growth, and a small or steady server does not sweep.
  A sweep pauses for a full pass, as CPython's own collector would, but
  once per doubling instead of once per quarter.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from .metrics import GcCollector
from .tasks import stop_task
from .transports.state import METRICS

log = logging.getLogger("realtime.gc")

OLDEST = 2
CHECK_EVERY = 1.0  # seconds between looks at the heap's size
FLOOR = 1 << 20  # blocks (and 64 times that many bytes of resident size)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def heap_size() -> tuple[int, int]:
    """Allocated blocks and resident bytes: what :meth:`Collector.due` compares."""
    return sys.getallocatedblocks(), resident_bytes()


def resident_bytes() -> int:
    """The process's resident size (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


class Collector:
    """Freezes what survives each pass; sweeps when the heap has grown."""

    def __init__(self, growth: float, floor: int = FLOOR) -> None:
        self.growth = growth
        self.floor = floor
        self.passes = 0  # automatic passes over the oldest generation
        self.sweeps = 0
        self.swept = 0  # objects the sweeps found unreachable
        self.last_sweep_seconds = 0.0
        self.baseline = (0, 0)  # allocated blocks and resident bytes after the last sweep
        self._sweeping = False

    def install(self) -> None:
        """Sweep once (modules, the app are frozen) and follow every pass."""
        gc.callbacks.append(self._after)
        self.sweep(quiet=True)

    def uninstall(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._after)
        gc.unfreeze()

    def _after(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == OLDEST and not self._sweeping:
            self.passes += 1
            gc.freeze()

    def due(self) -> bool:
        """The heap has grown ``growth`` times, and by ``floor``, since the
        last sweep (in blocks, which only count objects of up to 512 bytes and
        read 0 under ``PYTHONMALLOC=malloc``, or in resident bytes)."""
        now = heap_size()
        floors = (self.floor, self.floor * 64)
        return any(
            base > 0 and size > max(base * self.growth, base + floor)
            for size, base, floor in zip(now, self.baseline, floors, strict=True)
        )

    def sweep(self, *, quiet: bool = False) -> int:
        """One full pass over everything, frozen or not; the unreachable objects found."""
        self._sweeping = True
        started = time.perf_counter()
        try:
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
        finally:
            self._sweeping = False
        self.last_sweep_seconds = time.perf_counter() - started
        self.baseline = heap_size()
        self.sweeps += 1
        self.swept += found
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "gc sweep: %d unreachable objects freed in %.0f ms, %d blocks allocated",
            found,
            self.last_sweep_seconds * 1e3,
            self.baseline[0],
        )
        return found

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY)
            if self.due():
                self.sweep()


def collector_for(growth: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry: the collector for the life of a server process.
    (Not part of ``create_app``: tests run many apps in one process.)"""

    async def collecting(app: web.Application) -> AsyncIterator[None]:
        collector = Collector(growth)
        collector.install()
        app[METRICS].registry.register(GcCollector(collector))
        task = asyncio.get_running_loop().create_task(collector.run(), name="gc sweeps")
        try:
            yield
        finally:
            await stop_task(task)
            collector.uninstall()

    return collecting
