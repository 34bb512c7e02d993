"""The fan-out pass: rooms with queued events are flushed together, once per
event-loop pass (or once per ``write_delay`` window), so a burst of events
costs each subscriber one write."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .room import Room

log = logging.getLogger("realtime.hub")


class Fanout:
    def __init__(self, write_delay: float = 0.0) -> None:
        # Seconds a room's events wait to be written together (0: this pass).
        self.write_delay = write_delay
        self.delivered = 0
        # Called once per pass with the seconds from the first event's
        # arrival to the last write, and the number of deliveries.
        self.on_pass: Callable[[float, int], None] | None = None
        self._dirty: list[Room] = []
        self._scheduled = False
        self._started = 0.0

    def schedule(self, room: Room) -> None:
        """``room`` got its first queued event: flush it in the next pass."""
        self._dirty.append(room)
        if self._scheduled:
            return
        self._scheduled = True
        self._started = time.perf_counter()
        loop = asyncio.get_running_loop()
        if self.write_delay:
            loop.call_later(self.write_delay, self._flush)
        else:
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        count = 0
        for room in dirty:
            try:
                count += room.flush()
            except Exception:  # one broken room must not silence the others
                room.pending.clear()
                log.exception("fan-out to room %s failed", room.name)
        self.delivered += count
        if self.on_pass is not None and count:
            self.on_pass(time.perf_counter() - self._started, count)
