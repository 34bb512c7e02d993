"""Durable history in SQLite (WAL), written in batches off the event loop.

``append`` hands out the id at once (in the loop, so ids follow call order)
and returns only when the batch holding the message is committed: a message
is acknowledged, and broadcast, only once it is on disk. One thread owns the
connection, so reads see every committed write and nothing half-written.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..core.ports import BrokerUnavailable, Bus, History
from ..core.protocol import Draft, Message, parse_id
from .local import StoredLog

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL, id INTEGER NOT NULL, user TEXT NOT NULL, text TEXT NOT NULL,
    ts REAL NOT NULL, client_id TEXT, PRIMARY KEY (room, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY, last_id INTEGER NOT NULL, evicted INTEGER NOT NULL
) WITHOUT ROWID;
"""

Row = tuple[str, int, str, str, float, str | None]


class SqliteLog(StoredLog):
    def __init__(self, path: str | Path, history_size: int, bus: Bus) -> None:
        super().__init__(bus)
        self.path = Path(path)
        self._size = history_size
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="realtime-sqlite")
        self._db: sqlite3.Connection | None = None
        self._last: dict[str, int] = {}  # room -> last id handed out
        self._batch: list[tuple[Row, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None  # commits what is queued

    # -- the thread's side ------------------------------------------------
    def _open(self) -> dict[str, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a crash of the process (the write is in
        # the WAL file before append returns), not necessarily of the machine.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        self._db = db
        return {room: last for room, last in db.execute("SELECT room, last_id FROM rooms")}

    def _write(self, rows: list[Row]) -> None:
        db = self._require()
        last: dict[str, int] = {}
        for row in rows:
            last[row[0]] = max(last.get(row[0], 0), row[1])
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)", rows)
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
        self._last = await self._run(self._open)

    async def close(self) -> None:
        if self._drainer is not None:
            await self._drainer  # every message handed in is committed first
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    async def store(self, draft: Draft) -> Message:
        self._require()
        msg_id = self._last.get(draft.room, 0) + 1
        self._last[draft.room] = msg_id
        msg = Message(
            draft.room, str(msg_id), draft.user, draft.text, round(time.time(), 3), draft.client_id
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batch.append(((msg.room, msg_id, msg.user, msg.text, msg.ts, msg.client_id), done))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        await done
        return msg

    async def _drain(self) -> None:
        """Commit batches until none is waiting; resolve each in order."""
        while self._batch:
            batch, self._batch = self._batch, []
            try:
                await self._run(self._write, [row for row, _ in batch])
            except Exception as exc:  # every waiting sender hears of it
                error = BrokerUnavailable(f"history write failed: {exc}")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(error)
                continue
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def history(self, room: str, since: str | None, limit: int) -> History:
        after = parse_id(since)[0] if since is not None else None
        try:
            rows, last, evicted = await self._run(self._read, room, after, limit)
        except sqlite3.Error as exc:
            raise BrokerUnavailable(f"history read failed: {exc}") from exc
        messages = [Message(r[0], str(r[1]), r[2], r[3], r[4], r[5]) for r in rows]
        gap = after is not None and (after > last or after < evicted)
        return History(messages, gap=gap)

    async def rooms(self) -> list[str]:
        return list(self._last)
