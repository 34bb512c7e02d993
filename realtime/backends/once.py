"""Idempotency keys of one process's log: ``(room, key)`` -> the first message id.

A key is claimed before the message is stored, so a retry that arrives while
the first attempt is still being written waits for that attempt's id instead
of storing a second message. Keys expire after the window; the SQLite log
loads the unexpired ones at start, so they survive a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import NamedTuple

Slot = tuple[str, str]  # (room, idempotency key)


class Once(NamedTuple):
    """An idempotency key to keep with the message, and until when."""

    key: str
    expires: float


class OnceKeys:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        # Settled keys in expiry order (one window for all: insertion order).
        self._ids: OrderedDict[Slot, tuple[str, float]] = OrderedDict()
        self._pending: dict[Slot, asyncio.Future[str]] = {}

    def load(self, rows: Iterable[tuple[str, str, str, float]]) -> None:
        """Keys read back from durable storage: ``(room, key, id, expires)``."""
        for room, key, msg_id, expires in sorted(rows, key=lambda r: r[3]):
            self._ids[(room, key)] = (msg_id, expires)

    def _expire(self, now: float) -> None:
        while self._ids:
            slot, (_, expires) = next(iter(self._ids.items()))
            if expires > now:
                return
            del self._ids[slot]

    async def once(
        self, slot: Slot, window: float, store: Callable[[float], Awaitable[str]]
    ) -> tuple[str, bool]:
        """``store(expires)`` unless the slot is known: (the id, was it known)."""
        now = self.clock()
        self._expire(now)
        known = self._ids.get(slot)
        if known is not None:
            return known[0], True
        pending = self._pending.get(slot)
        if pending is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[slot] = future
        expires = now + window
        try:
            msg_id = await store(expires)
        except Exception as exc:  # nothing stored: a later retry may try again
            future.set_exception(exc)
            future.exception()  # waiters get it; no "never retrieved" warning
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self._pending.pop(slot, None)
        self._ids[slot] = (msg_id, expires)
        self._ids.move_to_end(slot)
        future.set_result(msg_id)
        return msg_id, False
