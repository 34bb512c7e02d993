"""Presence in Redis: one hash per room, kept honest by a per-process heartbeat.

Each process writes its members under ``{process}/{conn_id}`` and refreshes
``realtime:proc:{process}`` every HEARTBEAT_EVERY seconds. Members of a
process whose heartbeat expired (it crashed) are ignored and removed. If
Redis lost the members (a restart), the heartbeat writes them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from typing import Any

from ...core.ports import BrokerUnavailable, Member, Presence
from ...core.protocol import dumps
from .connection import RedisConnection, stop_task
from .keys import ROOMS_KEY, members_key, proc_key

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
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._beat()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat(), name="heartbeat")

    async def close(self) -> None:
        await stop_task(self._task)
        with contextlib.suppress(BrokerUnavailable):
            async with self.conn.command("presence cleanup") as r:
                pipe = r.pipeline(transaction=False)
                for room, members in self._local.items():
                    pipe.hdel(members_key(room), *(self._field(c) for c in members))
                pipe.delete(proc_key(self.proc))
                await pipe.execute()
        self._local.clear()

    def _field(self, conn_id: str) -> str:
        return f"{self.proc}/{conn_id}"

    def _json(self, member: Member) -> str:
        return dumps({"user": member.user, "transport": member.transport, "proc": self.proc})

    # -- join and leave -------------------------------------------------
    async def join(self, room: str, member: Member) -> list[Member]:
        self._local.setdefault(room, {})[member.conn_id] = member
        key = members_key(room)
        try:
            async with self.conn.command("join") as r:
                # Not a transaction: in a cluster the rooms set is in another slot.
                pipe = r.pipeline(transaction=False)
                pipe.hset(key, self._field(member.conn_id), self._json(member))
                pipe.hgetall(key)
                if room not in self._listed:
                    pipe.sadd(ROOMS_KEY, room)
                _, raw, *_ = await pipe.execute()
            self._listed.add(room)
        except BrokerUnavailable:
            self._forget(room, member)
            raise
        return (await self._alive({room: raw}))[room]

    async def leave(self, room: str, member: Member) -> list[Member]:
        self._forget(room, member)
        local = [
            Member(self._field(m.conn_id), m.user, m.transport)
            for m in self._local.get(room, {}).values()
        ]
        if self.conn.closed:
            return local
        key = members_key(room)
        try:
            async with self.conn.command("leave") as r:
                pipe = r.pipeline(transaction=True)
                pipe.hdel(key, self._field(member.conn_id))
                pipe.hgetall(key)
                _, raw = await pipe.execute()
            return (await self._alive({room: raw}))[room]
        except BrokerUnavailable as exc:
            # Not fatal: the heartbeat writes this process's members again
            # once Redis is back, which removes this one.
            self._resync = True
            log.warning("presence leave in %s not recorded: %s", room, exc)
            return local

    def _forget(self, room: str, member: Member) -> None:
        local = self._local.get(room, {})
        local.pop(member.conn_id, None)
        if not local:
            self._local.pop(room, None)

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
        """Members per room from raw hashes, without those of dead processes."""
        parsed: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        procs: set[str] = set()
        for room, raw in rooms.items():
            parsed[room] = []
            for field, value in raw.items():
                try:
                    data = json.loads(value)
                    procs.add(str(data["proc"]))
                except (ValueError, KeyError, TypeError):
                    data = {"proc": ""}
                parsed[room].append((field, data))
        others = sorted(procs - {self.proc})
        alive = {self.proc}
        if others:
            async with self.conn.command("presence") as r:
                pipe = r.pipeline(transaction=False)  # one slot per key in a cluster
                for p in others:
                    pipe.exists(proc_key(p))
                beats = await pipe.execute()
            alive.update(p for p, v in zip(others, beats, strict=True) if v)
        out: dict[str, list[Member]] = {}
        dead: dict[str, list[str]] = {}
        for room, items in parsed.items():
            out[room] = []
            for field, data in items:
                if data.get("proc") in alive:
                    out[room].append(
                        Member(field, str(data.get("user")), str(data.get("transport")))
                    )
                else:
                    dead.setdefault(room, []).append(field)
        if dead:
            with contextlib.suppress(BrokerUnavailable):
                async with self.conn.command("presence cleanup") as r:
                    pipe = r.pipeline(transaction=False)
                    for room, fields in dead.items():
                        pipe.hdel(members_key(room), *fields)
                    await pipe.execute()
        return out

    # -- heartbeat ------------------------------------------------------
    async def _beat(self) -> None:
        """Refresh this process's heartbeat; write members again if Redis lost them."""
        async with self.conn.command("heartbeat") as r:
            previous = await r.set(proc_key(self.proc), "1", ex=HEARTBEAT_TTL, get=True)
        if previous is None or self._resync:
            async with self.conn.command("presence resync"):
                await self._register_all()
            self._resync = False

    async def _register_all(self) -> None:
        r = self.conn.redis
        rooms = list(self._local.items())
        pipe = r.pipeline(transaction=False)
        for room, _ in rooms:
            pipe.hgetall(members_key(room))
        raws: list[dict[str, str]] = await pipe.execute() if rooms else []
        pipe = r.pipeline(transaction=False)
        mine = self.proc + "/"
        for (room, members), raw in zip(rooms, raws, strict=False):
            key = members_key(room)
            wanted: dict[Any, Any] = {self._field(c): self._json(m) for c, m in members.items()}
            stale = [f for f in raw if f.startswith(mine) and f not in wanted]
            if stale:
                pipe.hdel(key, *stale)
            if wanted:
                pipe.hset(key, mapping=wanted)
                pipe.sadd(ROOMS_KEY, room)
        await pipe.execute()
        self._listed = {room for room, members in rooms if members}

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
