"""The Redis backend: history in Streams (:mod:`.log`), presence in hashes
(:mod:`.presence`), live delivery over pub/sub (:mod:`.bus`, or per node in a
cluster: :mod:`.sharded`), all through one :mod:`.connection` to a server, a
Sentinel-managed master or a Cluster (:mod:`.url`); key names in :mod:`.keys`."""

from __future__ import annotations

from ...core.ports import Backend, Bus
from .bus import RedisBus
from .connection import COMMAND_TIMEOUT, RedisConnection
from .log import RedisLog
from .presence import RedisPresence
from .sharded import ShardedBus


def create_redis_backend(
    url: str, *, history_size: int, wait: int = 0, wait_timeout: float = 1.0
) -> Backend:
    """``wait`` > 0: acknowledge a message once that many replicas have it."""
    # A WAIT holds its connection up to wait_timeout: commands may take that long.
    conn = RedisConnection(url, command_timeout=max(COMMAND_TIMEOUT, wait_timeout + 1.0))
    log = RedisLog(conn, history_size, wait=wait, wait_timeout=wait_timeout)
    presence = RedisPresence(conn)
    bus: Bus = ShardedBus(conn, log) if conn.sharded else RedisBus(conn, log)
    return Backend(
        "redis",
        log,
        presence,
        bus,
        info={"process": presence.proc},
        status=lambda: {"redis": conn.describe()},
    )
