"""Which processes are alive, and removing what crashed ones left in a room.

A process is alive while its heartbeat key (``realtime:proc:{process}``)
exists. Its members and its count in a room's hashes are the only trace a
crashed process leaves: the count goes at once (joins leave it out at once,
and a background task removes the count, then the member fields page by
page, so that no join waits for a scan of a big room.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from ...core.ports import BrokerUnavailable, Member
from .connection import RedisConnection
from .keys import counts_key, fields_of, members_key, proc_key

PAGE = 1000  # member fields scanned and removed per command


def parse(raw: dict[str, str]) -> list[tuple[Member, str]]:
    """Members of a raw hash, each with its process ("" when unreadable)."""
    out = []
    for field, value in raw.items():
        try:
            data = json.loads(value)
            proc = str(data["proc"])
        except (ValueError, KeyError, TypeError):
            data, proc = {}, ""
        out.append((Member(field, str(data.get("user")), str(data.get("transport"))), proc))
    return out


class Liveness:
    """Heartbeats of other processes as this one (``proc``) sees them."""

    def __init__(self, conn: RedisConnection, proc: str, period: float) -> None:
        self.conn = conn
        self.proc = proc
        self.period = period
        self._beating: dict[str, float] = {}  # process -> until when it counts as alive
        self._burying: dict[tuple[str, str], asyncio.Task[None]] = {}  # (room, process)

    async def alive(self, procs: Iterable[str]) -> set[str]:
        """The processes among ``procs`` whose heartbeat has not expired (this
        one always; one seen alive counts as alive for a heartbeat period)."""
        now = time.monotonic()
        alive = {self.proc} | {p for p in procs if self._beating.get(p, 0.0) > now}
        if others := sorted(set(procs) - alive):
            async with self.conn.command("presence") as r:
                pipe = r.pipeline(transaction=False)  # one slot per key in a cluster
                for p in others:
                    pipe.exists(proc_key(p))
                beats = await pipe.execute()
            for p, beating in zip(others, beats, strict=True):
                if beating:
                    alive.add(p)
                    self._beating[p] = now + self.period
                else:
                    self._beating.pop(p, None)
        return alive

    def bury(self, room: str, dead: set[str]) -> None:
        """Remove crashed processes' counts and members from the room, in the
        background (once, however many joins saw them): callers already leave
        them out of what they count and list."""
        loop = asyncio.get_running_loop()
        for proc in dead:
            if (room, proc) not in self._burying:
                task = loop.create_task(self._scan_out(room, proc))
                self._burying[(room, proc)] = task

    async def _scan_out(self, room: str, proc: str) -> None:
        key, cursor = members_key(room), 0
        try:
            async with self.conn.command("presence cleanup") as r:
                await r.hdel(counts_key(room), proc)
            while True:
                async with self.conn.command("presence cleanup") as r:
                    cursor, found = await r.hscan(key, cursor, fields_of(proc), PAGE)
                    if found:
                        await r.hdel(key, *found)
                if not cursor:
                    return
        except BrokerUnavailable:
            return  # left for the next join or read that sees them
        finally:
            self._burying.pop((room, proc), None)

    async def remove(self, room: str, fields: list[str], procs: set[str]) -> None:
        """Remove these member fields and these processes' counts."""
        async with self.conn.command("presence cleanup") as r:
            pipe: Any = r.pipeline(transaction=False)
            for start in range(0, len(fields), PAGE):
                pipe.hdel(members_key(room), *fields[start : start + PAGE])
            if procs - {""}:
                pipe.hdel(counts_key(room), *(procs - {""}))
            await pipe.execute()

    async def close(self) -> None:
        for task in list(self._burying.values()):
            task.cancel()
        if self._burying:
            await asyncio.wait(list(self._burying.values()))
