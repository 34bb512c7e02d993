"""This process's writes to a room's member and counts hashes, batched.

Joins and leaves of one room that arrive while an earlier batch of the room
is on its way to Redis are gathered and sent as one script: a wave of
10,000 joins, or the leaves of a mass disconnect, costs a handful of round
trips instead of one each. A room has at most one batch in flight, so the
writes reach Redis in the order they were made (a join, then its leave).
Every caller of a batch gets the counts hash it returned, or its error.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...core.ports import BrokerUnavailable
from .connection import RedisConnection
from .keys import MEMBER_LUA, counts_key, members_key, pairs


class Batch:
    __slots__ = ("changes", "done")

    def __init__(self) -> None:
        self.changes: list[str] = []  # field, JSON or "" (to remove), …
        self.done: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()


def fail(batch: Batch, exc: BaseException) -> None:
    batch.done.set_exception(exc)
    batch.done.exception()  # retrieved: its callers may all be gone


class MemberWrites:
    """Batched member writes of one process (``proc``), per room."""

    def __init__(self, conn: RedisConnection, proc: str) -> None:
        self.conn = conn
        self.proc = proc
        self._next: dict[str, Batch] = {}  # room -> the batch being gathered
        self._sending: dict[str, asyncio.Task[None]] = {}  # room -> its sender

    async def write(self, room: str, changes: list[str]) -> dict[str, str]:
        """Set members (field, JSON) or remove them (field, ""); this
        process's count follows what Redis actually added and removed. The
        room's counts hash afterwards. The write is made even if the caller is
        cancelled while it waits."""
        batch = self._next.get(room)
        if batch is None:
            batch = self._next[room] = Batch()
            if room not in self._sending:
                task = asyncio.get_running_loop().create_task(self._send(room))
                self._sending[room] = task
        batch.changes += changes
        return await asyncio.shield(batch.done)

    async def _send(self, room: str) -> None:
        batch = None
        try:
            while (batch := self._next.pop(room, None)) is not None:
                try:
                    async with self.conn.command("presence") as r:
                        raw = await self._script(r, room, batch)
                    batch.done.set_result(pairs(raw))
                except Exception as exc:  # BrokerUnavailable, for every caller
                    fail(batch, exc)
        finally:
            del self._sending[room]
            for left in (batch, self._next.pop(room, None)):  # when cancelled
                if left is not None and not left.done.done():
                    fail(left, BrokerUnavailable("presence writes stopped"))

    def _script(self, r: Any, room: str, batch: Batch) -> Any:
        keys = (members_key(room), counts_key(room))
        return r.eval(MEMBER_LUA, 2, *keys, self.proc, *batch.changes)

    async def settle(self) -> None:
        """Wait for the batches on their way (at close)."""
        if self._sending:
            await asyncio.wait(list(self._sending.values()))
