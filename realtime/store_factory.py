"""Choose a history store by URL: ``memory`` or ``sqlite:PATH``."""

from __future__ import annotations

from .store import MemoryStore, Store


def create_store(url: str, *, history_size: int) -> Store:
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        return MemoryStore(history_size)
    if scheme == "sqlite":
        from .store_sqlite import SqliteStore

        path = url.split(":", 1)[1] if ":" in url else ""
        if not path:
            raise ValueError("sqlite store needs a path: sqlite:PATH")
        return SqliteStore(path, history_size)
    raise ValueError(f"unknown store {url!r} (use memory or sqlite:PATH)")
