"""The Redis backend: history in Streams (:mod:`.log`), presence in hashes
(:mod:`.presence`), live delivery over pub/sub (:mod:`.bus`), all on one
connection pool (:mod:`.connection`); key names in :mod:`.keys`."""

from __future__ import annotations

from ...core.ports import Backend
from .bus import RedisBus
from .connection import RedisConnection
from .log import RedisLog
from .presence import RedisPresence


def create_redis_backend(url: str, *, history_size: int) -> Backend:
    conn = RedisConnection(url)
    log = RedisLog(conn, history_size)
    presence = RedisPresence(conn)
    return Backend("redis", log, presence, RedisBus(conn, log), info={"process": presence.proc})
