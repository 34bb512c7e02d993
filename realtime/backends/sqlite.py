"""Durable history in SQLite (WAL), written in batches off the event loop.

``append`` hands out the id at once (in the loop, so ids follow call order)
and returns only when the batch holding the message is committed: a message
is acknowledged, and broadcast, only once it is on disk. One thread owns the
connection, so reads see every committed write and nothing half-written.

The last id of the ``max_rooms`` rooms used last is kept in memory; a room
used again after that reads its last id back from disk, once however many
sends wait for it. A room with ids handed out but not yet committed is never
forgotten: the disk would not know them yet.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..core.ports import BrokerUnavailable, Bus, History, Page
from ..core.protocol import Draft, Message, parse_id
from .local import StoredLog
from .once import Once
from .sqlite_file import KeyRow, Row, SqliteFile

T = TypeVar("T")

TOP_ID = 2**62  # beyond any id, within SQLite's integers


class SqliteLog(StoredLog):
    def __init__(
        self, path: str | Path, history_size: int, bus: Bus, max_rooms: int = 10_000
    ) -> None:
        super().__init__(bus)
        self.path = Path(path)
        self._file = SqliteFile(self.path, history_size)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="realtime-sqlite")
        self._max_rooms = max_rooms
        self._last: OrderedDict[str, int] = OrderedDict()  # room -> last id, least recent first
        self._unsaved: dict[str, int] = {}  # room -> newest id handed out, not yet committed
        self._loading: dict[str, asyncio.Future[int]] = {}  # room -> its last id being read
        self._batch: list[tuple[Row, asyncio.Future[None]]] = []
        self._batch_keys: list[KeyRow] = []  # idempotency keys of the batch's messages
        self._drainer: asyncio.Task[None] | None = None  # commits what is queued

    # -- the loop's side --------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        keys = await self._run(self._file.open)
        self.keys.load((room, key, str(msg_id), expires) for room, key, msg_id, expires in keys)

    async def close(self) -> None:
        if self._drainer is not None:
            await self._drainer  # every message handed in is committed first
        await self._run(self._file.close)
        self._executor.shutdown(wait=True)

    async def store(self, draft: Draft, once: Once | None = None) -> Message:
        self._file.require()
        last = self._last.get(draft.room)
        if last is None:
            last = await self._load_last(draft.room)
        msg_id = last + 1
        self._remember(draft.room, msg_id)
        self._unsaved[draft.room] = msg_id
        msg = Message(
            draft.room, str(msg_id), draft.user, draft.text, round(time.time(), 3), draft.client_id
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batch.append(((msg.room, msg_id, msg.user, msg.text, msg.ts, msg.client_id), done))
        if once is not None:
            self._batch_keys.append((msg.room, once.key, msg_id, once.expires))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        await done
        return msg

    async def _load_last(self, room: str) -> int:
        loading = self._loading.get(room)
        if loading is None:
            loading = asyncio.ensure_future(self._run(self._file.read_last, room))
            self._loading[room] = loading
            loading.add_done_callback(lambda _: self._loading.pop(room, None))
        try:
            on_disk = await asyncio.shield(loading)
        except sqlite3.Error as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        last = self._last.get(room)  # a send that waited with this one may have gone first
        if last is None:
            self._remember(room, on_disk)
            return on_disk
        return last

    def _remember(self, room: str, last: int) -> None:
        self._last[room] = last
        self._last.move_to_end(room)
        if len(self._last) > self._max_rooms:
            for old in self._last:  # least recently used first
                if old not in self._unsaved and old != room:
                    del self._last[old]
                    break

    async def _drain(self) -> None:
        """Commit batches until none is waiting; resolve each in order."""
        while self._batch:
            batch, self._batch = self._batch, []
            keys, self._batch_keys = self._batch_keys, []
            try:
                await self._run(self._file.write, [row for row, _ in batch], keys)
            except Exception as exc:  # every waiting sender hears of it
                self._saved(batch)
                error = BrokerUnavailable(f"history write failed: {exc}")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(error)
                continue
            self._saved(batch)
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    def _saved(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        """The batch is done with (committed, or failed and never acknowledged)."""
        for (room, msg_id, *_), _ in batch:
            if self._unsaved.get(room) == msg_id:
                del self._unsaved[room]

    async def history(self, room: str, since: str | None, limit: int) -> History:
        after = parse_id(since)[0] if since is not None else None
        try:
            rows, last, evicted = await self._run(self._file.read, room, after, limit)
        except sqlite3.Error as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        messages = [Message(r[0], str(r[1]), r[2], r[3], r[4], r[5]) for r in rows]
        gap = after is not None and (after > last or after < evicted)
        return History(messages, gap=gap)

    async def page(
        self, room: str, *, after: str | None, before: str | None, limit: int, newest_first: bool
    ) -> Page:
        low = min(parse_id(after)[0], TOP_ID) if after is not None else 0
        high = min(parse_id(before)[0], TOP_ID) if before is not None else TOP_ID
        try:
            rows = await self._run(self._file.page, room, low, high, limit + 1, newest_first)
        except sqlite3.Error as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        messages = [Message(r[0], str(r[1]), r[2], r[3], r[4], r[5]) for r in rows[:limit]]
        return Page(messages, more=len(rows) > limit)

    async def rooms(self) -> list[str]:
        try:
            return await self._run(self._file.read_rooms)
        except sqlite3.Error as exc:
            raise BrokerUnavailable(f"room list read failed: {exc}") from exc
