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

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL, id INTEGER NOT NULL, user TEXT NOT NULL, text TEXT NOT NULL,
    ts REAL NOT NULL, client_id TEXT, PRIMARY KEY (room, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY, last_id INTEGER NOT NULL, evicted INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS once_keys (
    room TEXT NOT NULL, key TEXT NOT NULL, id INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (room, key)
) WITHOUT ROWID;
"""

Row = tuple[str, int, str, str, float, str | None]
KeyRow = tuple[str, str, int, float]  # room, idempotency key, message id, expires
TOP_ID = 2**62  # beyond any id, within SQLite's integers


class SqliteLog(StoredLog):
    def __init__(
        self, path: str | Path, history_size: int, bus: Bus, max_rooms: int = 10_000
    ) -> None:
        super().__init__(bus)
        self.path = Path(path)
        self._size = history_size
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="realtime-sqlite")
        self._db: sqlite3.Connection | None = None
        self._max_rooms = max_rooms
        self._last: OrderedDict[str, int] = OrderedDict()  # room -> last id, least recent first
        self._unsaved: dict[str, int] = {}  # room -> newest id handed out, not yet committed
        self._loading: dict[str, asyncio.Future[int]] = {}  # room -> its last id being read
        self._batch: list[tuple[Row, asyncio.Future[None]]] = []
        self._batch_keys: list[KeyRow] = []  # idempotency keys of the batch's messages
        self._drainer: asyncio.Task[None] | None = None  # commits what is queued

    # -- the thread's side ------------------------------------------------
    def _open(self) -> list[KeyRow]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a crash of the process (the write is in
        # the WAL file before append returns), not necessarily of the machine.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        self._db = db
        db.execute("DELETE FROM once_keys WHERE expires <= ?", (time.time(),))
        keys: list[KeyRow] = db.execute("SELECT room, key, id, expires FROM once_keys").fetchall()
        return keys

    def _read_last(self, room: str) -> int:
        row = self._require().execute("SELECT last_id FROM rooms WHERE room = ?", (room,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    def _read_rooms(self) -> list[str]:
        return [r[0] for r in self._require().execute("SELECT room FROM rooms")]

    def _write(self, rows: list[Row], keys: list[KeyRow]) -> None:
        db = self._require()
        last: dict[str, int] = {}
        for row in rows:
            last[row[0]] = max(last.get(row[0], 0), row[1])
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)", rows)
            if keys:  # kept with their messages, in the same transaction
                db.execute("DELETE FROM once_keys WHERE expires <= ?", (time.time(),))
                db.executemany("INSERT OR REPLACE INTO once_keys VALUES (?, ?, ?, ?)", keys)
            for room, top in last.items():
                cutoff = top - self._size
                db.execute(
                    "INSERT INTO rooms VALUES (?, ?, 0) ON CONFLICT(room) DO UPDATE"
                    " SET last_id = max(last_id, excluded.last_id)",
                    (room, top),
                )
                if cutoff > 0:
                    deleted = db.execute(
                        "DELETE FROM messages WHERE room = ? AND id <= ?", (room, cutoff)
                    ).rowcount
                    if deleted:
                        db.execute(
                            "UPDATE rooms SET evicted = max(evicted, ?) WHERE room = ?",
                            (cutoff, room),
                        )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _read(self, room: str, since: int | None, limit: int) -> tuple[list[Row], int, int]:
        db = self._require()
        meta = db.execute("SELECT last_id, evicted FROM rooms WHERE room = ?", (room,)).fetchone()
        last, evicted = meta if meta else (0, 0)
        if since is None or since > last:
            rows = db.execute(
                "SELECT * FROM messages WHERE room = ? ORDER BY id DESC LIMIT ?", (room, limit)
            ).fetchall()
            rows.reverse()
        else:
            rows = db.execute(
                "SELECT * FROM messages WHERE room = ? AND id > ? ORDER BY id LIMIT ?",
                (room, since, limit),
            ).fetchall()
        return rows, last, evicted

    def _page(self, room: str, low: int, high: int, limit: int, newest_first: bool) -> list[Row]:
        order = "DESC" if newest_first else "ASC"
        rows: list[Row] = (
            self._require()
            .execute(
                "SELECT * FROM messages WHERE room = ? AND id > ? AND id < ?"
                f" ORDER BY id {order} LIMIT ?",
                (room, low, high, limit),
            )
            .fetchall()
        )
        return rows

    def _require(self) -> sqlite3.Connection:
        if self._db is None:
            raise BrokerUnavailable("the store is not open")
        return self._db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- the loop's side --------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        keys = await self._run(self._open)
        self.keys.load((room, key, str(msg_id), expires) for room, key, msg_id, expires in keys)

    async def close(self) -> None:
        if self._drainer is not None:
            await self._drainer  # every message handed in is committed first
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    async def store(self, draft: Draft, once: Once | None = None) -> Message:
        self._require()
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
            loading = asyncio.ensure_future(self._run(self._read_last, room))
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
                await self._run(self._write, [row for row, _ in batch], keys)
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
            rows, last, evicted = await self._run(self._read, room, after, limit)
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
            rows = await self._run(self._page, room, low, high, limit + 1, newest_first)
        except sqlite3.Error as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        messages = [Message(r[0], str(r[1]), r[2], r[3], r[4], r[5]) for r in rows[:limit]]
        return Page(messages, more=len(rows) > limit)

    async def rooms(self) -> list[str]:
        try:
            return await self._run(self._read_rooms)
        except sqlite3.Error as exc:
            raise BrokerUnavailable(f"room list read failed: {exc}") from exc
