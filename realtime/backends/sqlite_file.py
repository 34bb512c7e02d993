"""The SQLite file of the history: every call runs on the log's one writer
thread (see :mod:`.sqlite`), which owns the connection."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from ..core.ports import BrokerUnavailable

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


class SqliteFile:
    """Messages, each room's last and evicted ids, and idempotency keys."""

    def __init__(self, path: Path, history_size: int) -> None:
        self.path = path
        self._size = history_size
        self._db: sqlite3.Connection | None = None

    def open(self) -> list[KeyRow]:
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

    def read_last(self, room: str) -> int:
        row = self.require().execute("SELECT last_id FROM rooms WHERE room = ?", (room,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    def read_rooms(self) -> list[str]:
        return [r[0] for r in self.require().execute("SELECT room FROM rooms")]

    def write(self, rows: list[Row], keys: list[KeyRow]) -> None:
        db = self.require()
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

    def read(self, room: str, since: int | None, limit: int) -> tuple[list[Row], int, int]:
        db = self.require()
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

    def page(self, room: str, low: int, high: int, limit: int, newest_first: bool) -> list[Row]:
        order = "DESC" if newest_first else "ASC"
        rows: list[Row] = (
            self.require()
            .execute(
                "SELECT * FROM messages WHERE room = ? AND id > ? AND id < ?"
                f" ORDER BY id {order} LIMIT ?",
                (room, low, high, limit),
            )
            .fetchall()
        )
        return rows

    def require(self) -> sqlite3.Connection:
        if self._db is None:
            raise BrokerUnavailable("the store is not open")
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
