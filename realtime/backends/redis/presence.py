"""Presence in Redis: two hashes per room, kept honest by a per-process heartbeat.

Each process writes its members under ``{process}/{conn_id}``, keeps its
count of them in the room's counts hash (one script does both), and
refreshes ``realtime:proc:{process}`` every HEARTBEAT_EVERY seconds. A join
or leave reads the counts (one field per process) and at most ``limit``
members, however big the room. Members and counts of a process whose
heartbeat expired (it crashed) are ignored and removed. If Redis lost them
(a restart), or a join or leave may not have been recorded, the heartbeat
writes this process's members and counts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from typing import Any

from ...core.ports import BrokerUnavailable, Headcount, Member, Presence
from ...core.protocol import dumps
from ...tasks import stop_task
from .connection import RedisConnection
from .keys import ROOMS_KEY, counts_key, fields_of, member_field, members_key, pairs, proc_key
from .liveness import Liveness, parse
from .members import MemberWrites

log = logging.getLogger("realtime.redis")

HEARTBEAT_EVERY = 2.0
HEARTBEAT_TTL = 10  # seconds without a heartbeat before a process's members expire


class RedisPresence(Presence):
    def __init__(self, conn: RedisConnection) -> None:
        self.conn = conn
        self.proc = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._local: dict[str, dict[str, Member]] = {}  # to write again if Redis lost them
        self._resync = False
        self._listed: set[str] = set()  # rooms this process added to the rooms set
        self._stale: set[str] = set()  # rooms where a join or leave may not be recorded
        self.liveness = Liveness(conn, self.proc, HEARTBEAT_EVERY)
        self.writes = MemberWrites(conn, self.proc)
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._beat()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat(), name="heartbeat")

    async def close(self) -> None:
        """Remove this process's members and counts, also where a join or
        leave may not have been recorded (the heartbeat would have fixed it)."""
        await stop_task(self._task)
        await self.writes.settle()
        await self.liveness.close()
        with contextlib.suppress(BrokerUnavailable):
            async with self.conn.command("presence cleanup") as r:
                pipe = r.pipeline(transaction=False)
                for room in sorted(set(self._local) | self._stale):
                    fields = [self._field(c) for c in self._local.get(room, {})]
                    if room in self._stale:
                        fields += await self._mine(r, room)
                    if fields:
                        pipe.hdel(members_key(room), *fields)
                    pipe.hdel(counts_key(room), self.proc)
                pipe.delete(proc_key(self.proc))
                await pipe.execute()
        self._local.clear()

    async def _mine(self, r: Any, room: str) -> list[str]:
        """This process's fields in the room's member hash."""
        match = fields_of(self.proc)
        return [f async for f, _ in r.hscan_iter(members_key(room), match, 1000)]

    def _field(self, conn_id: str) -> str:
        return member_field(self.proc, conn_id)

    def _json(self, member: Member) -> str:
        return dumps({"user": member.user, "transport": member.transport, "proc": self.proc})

    # -- join and leave -------------------------------------------------
    async def join(self, room: str, member: Member, limit: int) -> Headcount:
        self._local.setdefault(room, {})[member.conn_id] = member
        field = self._field(member.conn_id)
        try:
            if room not in self._listed:
                async with self.conn.command("join") as r:
                    await r.sadd(ROOMS_KEY, room)
                self._listed.add(room)
            counts = await self.writes.write(room, [field, self._json(member)])
        except BrokerUnavailable:
            # The script may have run: the heartbeat writes this process's
            # members of the room again (its count follows).
            self._forget(room, member)
            self._stale.add(room)
            self._resync = True
            raise
        return await self._headcount(room, counts, limit)

    async def leave(self, room: str, member: Member, limit: int) -> Headcount:
        self._forget(room, member)
        if self.conn.closed:
            return self._local_headcount(room, limit)
        try:
            counts = await self.writes.write(room, [self._field(member.conn_id), ""])
        except BrokerUnavailable as exc:
            # Not fatal: the heartbeat writes this process's members again
            # once Redis is back, which removes this one.
            if room not in self._stale:  # one warning per room until then
                log.warning("presence leave in %s not recorded: %s", room, exc)
            self._stale.add(room)
            self._resync = True
            return self._local_headcount(room, limit)
        try:
            return await self._headcount(room, counts, limit, leaving=True)
        except BrokerUnavailable:  # recorded; only the reading after it failed
            return self._local_headcount(room, limit)

    def _forget(self, room: str, member: Member) -> None:
        local = self._local.get(room, {})
        local.pop(member.conn_id, None)
        if not local:
            self._local.pop(room, None)

    def _local_headcount(self, room: str, limit: int) -> Headcount:
        """This process's members only: what can be said while Redis is away."""
        local = [
            Member(self._field(m.conn_id), m.user, m.transport)
            for m in self._local.get(room, {}).values()
        ]
        return Headcount(len(local), local[:limit])

    async def _headcount(
        self, room: str, counts: dict[str, str], limit: int, *, leaving: bool = False
    ) -> Headcount:
        """The room's count from the live processes' counts, and up to
        ``limit`` members read at random (all of them when that many or fewer)."""
        alive = await self.liveness.alive(counts)
        if dead := set(counts) - alive:
            self.liveness.bury(room, dead)
        count = sum(int(n) for proc, n in counts.items() if proc in alive)
        if limit <= 0 or (leaving and count >= limit):
            return Headcount(count)
        async with self.conn.command("presence") as r:
            raw = await r.hrandfield(members_key(room), limit, withvalues=True)
        first = [m for m, proc in parse(pairs(raw)) if proc in alive]
        return Headcount(count, first)

    async def rooms(self) -> dict[str, list[Member]]:
        async with self.conn.command("rooms") as r:
            names = sorted(str(n) for n in await r.smembers(ROOMS_KEY))
            pipe = r.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(members_key(name))
            raws = await pipe.execute() if names else []
        members = await self._alive(dict(zip(names, raws, strict=True)))
        return {name: found for name, found in members.items() if found}

    async def members(self, room: str) -> list[Member]:
        async with self.conn.command("presence") as r:
            raw: Any = await r.hgetall(members_key(room))
        return (await self._alive({room: raw}))[room]

    async def _alive(self, rooms: dict[str, dict[str, str]]) -> dict[str, list[Member]]:
        """Members per room from raw hashes, without those of dead processes
        (which are removed, with their counts)."""
        parsed = {room: parse(raw) for room, raw in rooms.items()}
        alive = await self.liveness.alive({proc for found in parsed.values() for _, proc in found})
        out: dict[str, list[Member]] = {}
        for room, found in parsed.items():
            out[room] = [m for m, proc in found if proc in alive]
            dead = [(m.conn_id, proc) for m, proc in found if proc not in alive]
            if dead:
                with contextlib.suppress(BrokerUnavailable):
                    await self.liveness.remove(room, [f for f, _ in dead], {p for _, p in dead})
        return out

    # -- heartbeat ------------------------------------------------------
    async def _beat(self) -> None:
        """Refresh this process's heartbeat; write its members again where
        Redis may have lost them (all rooms, if the heartbeat key was gone)
        or a write may not have been recorded (``_stale``)."""
        async with self.conn.command("heartbeat") as r:
            previous = await r.set(proc_key(self.proc), "1", ex=HEARTBEAT_TTL, get=True)
        if previous is None or self._resync:
            stale, self._stale, self._resync = self._stale, set(), False
            try:
                await self._register(set(self._local) if previous is None else set(), stale)
            except BaseException:
                self._stale |= stale  # asked again on the next heartbeat
                self._resync = True
                raise

    async def _register(self, lost: set[str], stale: set[str]) -> None:
        """Write this process's members of these rooms again, and remove its
        fields there that are no longer members. The writes go through the
        room's batches, in order with the joins and leaves on their way, and
        the counts follow what they change."""
        if listed := sorted(room for room in lost | stale if room in self._local):
            async with self.conn.command("presence resync") as r:
                await r.sadd(ROOMS_KEY, *listed)
            self._listed |= set(listed)
        for room in sorted(lost | stale):
            members = self._local.get(room, {})
            changes = [x for c, m in members.items() for x in (self._field(c), self._json(m))]
            if room in stale:
                async with self.conn.command("presence resync") as r:
                    gone = set(await self._mine(r, room)) - {self._field(c) for c in members}
                changes += [x for f in sorted(gone) for x in (f, "")]
            if changes:
                await self.writes.write(room, changes)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            was_ok = self.conn.ok
            try:
                await self._beat()
                if not was_ok:
                    log.info("Redis at %s reachable again", self.conn.where)
            except BrokerUnavailable as exc:
                self._resync = True
                if was_ok:
                    log.warning("Redis heartbeat failed: %s", exc)
