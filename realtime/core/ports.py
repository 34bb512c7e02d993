"""The three small interfaces a backend implements, and what they exchange.

- :class:`MessageLog` stores a message (assigning its id) and reads history;
  a stored message reaches every process through the backend's bus.
- :class:`Presence` records who is connected to which room, on every process.
- :class:`Bus` carries events that are not stored (presence) to every
  process, and calls ``deliver`` for every event of a watched room: the one
  delivery path, whatever the backend.

A :class:`Backend` bundles one of each; ``realtime.backends`` picks one by URL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .protocol import Draft, Event, Message

Deliver = Callable[[str, Event], None]
# A message for every process rather than a room (a user to disconnect).
Control = Callable[[Mapping[str, Any]], None]


class BrokerUnavailable(Exception):
    """The backend cannot take or give data right now; nothing was stored."""


@dataclass(frozen=True, slots=True)
class Member:
    """One connection in a room, as presence shows it."""

    conn_id: str
    user: str
    transport: str

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "transport": self.transport}


@dataclass(frozen=True, slots=True)
class Headcount:
    """A room's presence after a join or leave: how many members it has on
    every process, and up to the caller's ``limit`` of them. Reading it costs
    the backend O(limit), not O(members): a join wave of N stays O(N)."""

    count: int
    first: list[Member] = field(default_factory=list)


@dataclass(slots=True)
class History:
    """Messages read back for a join or a resume, oldest first.

    ``gap`` is true when the resume point is older than what the log still
    holds (messages after it were evicted) or unknown to it (newer than the
    newest id, as after a reset): the client must be told it missed something.
    """

    messages: list[Message] = field(default_factory=list)
    gap: bool = False


@dataclass(slots=True)
class Page:
    """A page of history in the order asked for; ``more`` when it was cut at the limit."""

    messages: list[Message] = field(default_factory=list)
    more: bool = False


class MessageLog(ABC):
    """Appends messages with strictly increasing ids per room, reads them back."""

    # True when ids follow the order in which appends are *called* (assigned
    # before the first await), so one sender's appends may overlap.
    ordered_appends = False

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @abstractmethod
    async def append(self, draft: Draft) -> Message:
        """Store the message and hand it to the bus; raise BrokerUnavailable."""

    @abstractmethod
    async def append_once(self, draft: Draft, key: str, window: float) -> tuple[str, bool]:
        """Append unless ``key`` was used in the room within ``window`` seconds
        (on every process, and across restarts where the log is durable):
        the message id, and True when it is the earlier message's."""

    @abstractmethod
    async def history(self, room: str, since: str | None, limit: int) -> History:
        """The last ``limit`` messages, or those after ``since`` (at most limit)."""

    @abstractmethod
    async def page(
        self, room: str, *, after: str | None, before: str | None, limit: int, newest_first: bool
    ) -> Page:
        """Up to ``limit`` messages strictly between ``after`` and ``before``
        (either may be open), oldest first or newest first."""

    @abstractmethod
    async def rooms(self) -> list[str]:
        """Names of the rooms that have a history."""


class Presence(ABC):
    """Who is in which room, on every process.

    ``join`` returns the room's count and up to ``limit`` members; ``leave``
    the count, and the members only when fewer than ``limit`` remain (a leave
    is announced with its member list only then).
    """

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @abstractmethod
    async def join(self, room: str, member: Member, limit: int) -> Headcount: ...

    @abstractmethod
    async def leave(self, room: str, member: Member, limit: int) -> Headcount: ...

    @abstractmethod
    async def rooms(self) -> dict[str, list[Member]]:
        """Members of every room that has any, on every process."""

    async def members(self, room: str) -> list[Member]:
        """Members of one room, on every process."""
        return (await self.rooms()).get(room, [])


class Bus(ABC):
    """Carries events to every process that watches their room."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self.on_control: Control | None = None

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

    async def watch(self, room: str) -> None:  # noqa: B027 (most buses need nothing)
        """A room got its first local subscriber (the Redis bus notes where it
        stands). Never raises: a bus that cannot look now just knows less."""

    def unwatch(self, room: str) -> None:  # noqa: B027
        """The room's last local subscriber left."""

    @abstractmethod
    async def publish(self, room: str, event: Event) -> None:
        """Deliver an event that is not stored (presence) everywhere."""

    @abstractmethod
    async def send_control(self, message: Mapping[str, Any]) -> None:
        """Hand ``message`` (JSON-able) to :attr:`on_control` on every process."""

    def control(self, message: Mapping[str, Any]) -> None:
        if self.on_control is not None:
            self.on_control(message)


@dataclass(slots=True)
class Backend:
    """One message log, one presence registry and one bus, started together."""

    name: str
    log: MessageLog
    presence: Presence
    bus: Bus
    info: dict[str, Any] = field(default_factory=dict)
    # Where the backend's data lives now, for /healthz (a Redis master can move).
    status: Callable[[], dict[str, Any]] | None = None

    async def start(self, deliver: Deliver) -> None:
        await self.bus.start(deliver)
        await self.log.open()
        await self.presence.open()

    async def close(self) -> None:
        await self.presence.close()
        await self.log.close()
        await self.bus.close()

    @property
    def healthy(self) -> bool:
        return self.bus.healthy
