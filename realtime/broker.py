"""The interface every broker implements, and the choice of one by URL.

A broker stores a published message (assigning its id), then hands it to
``deliver`` on every process that serves the room; it carries presence the
same way. The in-memory broker calls ``deliver`` directly, the Redis broker
from its pub/sub listener: one delivery path in the hub, two backends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .protocol import Draft, Event, Message
from .store import History

Deliver = Callable[[str, Event], None]


class BrokerUnavailable(Exception):
    """The backend cannot take a message right now; nothing was stored."""


@dataclass(frozen=True, slots=True)
class Member:
    """One connection in a room, as presence shows it."""

    conn_id: str
    user: str
    transport: str

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "transport": self.transport}


class Broker(ABC):
    name = "broker"

    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def close(self) -> None:
        return None

    def deliver(self, room: str, event: Event) -> None:
        if self._deliver is not None:
            self._deliver(room, event)

    @property
    def healthy(self) -> bool:
        return True

    @abstractmethod
    async def publish(self, draft: Draft) -> Message:
        """Store the message, then deliver it everywhere; raise BrokerUnavailable."""

    @abstractmethod
    async def history(self, room: str, since: str | None, limit: int) -> History: ...

    @abstractmethod
    async def join(self, room: str, member: Member) -> list[Member]:
        """Record presence; return the room's members on every process."""

    @abstractmethod
    async def leave(self, room: str, member: Member) -> list[Member]: ...

    @abstractmethod
    async def broadcast(self, room: str, event: Event) -> None:
        """Deliver an event that is not stored (presence) everywhere."""

    @abstractmethod
    async def rooms(self) -> dict[str, dict[str, int]]:
        """Room name -> member count per transport, for every known room."""


def transport_counts(members: Iterable[Member]) -> dict[str, int]:
    """Members per transport, as ``GET /rooms`` shows them."""
    counts = Counter(m.transport for m in members)
    return {"ws": counts.get("ws", 0), "sse": counts.get("sse", 0)}


def create_broker(url: str, *, history_size: int, store_url: str = "memory") -> Broker:
    """Pick a broker by URL scheme; optional backends are imported lazily."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        from .broker_memory import MemoryBroker
        from .store_factory import create_store

        return MemoryBroker(create_store(store_url, history_size=history_size))
    if scheme in ("redis", "rediss", "unix"):
        from .broker_redis import RedisBroker  # type: ignore[import-not-found,unused-ignore]

        broker: Broker = RedisBroker(url, history_size=history_size)
        return broker
    raise ValueError(f"unknown broker URL scheme {scheme!r} (use memory or redis://)")
