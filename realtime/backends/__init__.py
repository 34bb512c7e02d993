"""Backends by URL: ``memory`` (one process, with a history store) or Redis
(several processes and machines): ``redis://…`` for one server,
``redis-sentinel://…`` for a Sentinel-managed master, ``redis-cluster://…``
for a Redis Cluster. Redis is imported only when asked for, so it stays an
optional extra."""

from __future__ import annotations

from collections.abc import Container

from ..core.ports import Backend, BrokerUnavailable, Bus, MessageLog

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis-sentinel", "redis-cluster")


def is_redis_url(url: str) -> bool:
    return url.split(":", 1)[0].lower() in REDIS_SCHEMES


def create_backend(
    url: str,
    *,
    history_size: int,
    store_url: str = "memory",
    max_rooms: int = 10_000,
    redis_wait: int = 0,
    redis_wait_timeout: float = 1.0,
) -> Backend:
    """Pick a backend by URL scheme; optional ones are imported lazily."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        from .local import LocalBus, LocalPresence

        bus = LocalBus()
        log = create_log(store_url, history_size, bus, max_rooms, followed=bus.watched)
        return Backend("memory", log, LocalPresence(), bus)
    if is_redis_url(url):
        try:
            from .redis import create_redis_backend
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != "redis":
                raise
            raise BrokerUnavailable(
                f"--broker {scheme}:// needs the redis package: pip install 'realtime[redis]' "
                "(in a checkout: .venv/bin/pip install -e '.[redis]')"
            ) from None

        return create_redis_backend(
            url, history_size=history_size, wait=redis_wait, wait_timeout=redis_wait_timeout
        )
    raise ValueError(
        f"unknown broker URL scheme {scheme!r} "
        "(use memory, redis://, redis-sentinel:// or redis-cluster://)"
    )


def create_log(
    url: str,
    history_size: int,
    bus: Bus,
    max_rooms: int = 10_000,
    followed: Container[str] = frozenset(),
) -> MessageLog:
    """The history of the memory backend: ``memory`` or ``sqlite:PATH``."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        from .memory import MemoryLog

        return MemoryLog(history_size, bus, max_rooms, followed)
    if scheme == "sqlite":
        from .sqlite import SqliteLog

        path = url.split(":", 1)[1] if ":" in url else ""
        if not path:
            raise ValueError("sqlite store needs a path: sqlite:PATH")
        return SqliteLog(path, history_size, bus, max_rooms)
    raise ValueError(f"unknown store {url!r} (use memory or sqlite:PATH)")
