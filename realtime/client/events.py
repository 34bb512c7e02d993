"""What a subscription yields: typed, frozen views of the server's events.

The server sends the same JSON on every transport; :func:`parse_event`
turns one object into a :class:`Message`, :class:`Presence`, :class:`Gap` or
:class:`ErrorEvent`. Message ids are ``"17"`` (memory, SQLite) or a Redis
stream id ``"1700000000000-3"``; :func:`id_key` orders both the way the
server does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The server's own message type and id order (pure Python: no server code loads).
from ..core.protocol import Message as Message
from ..core.protocol import ProtocolError, parse_id


def id_key(value: str) -> tuple[int, int]:
    """Sort key of a message id: ``"17"`` → ``(17, 0)``, ``"1700-3"`` → ``(1700, 3)``."""
    try:
        return parse_id(value)
    except ProtocolError as exc:
        raise ValueError(exc.detail) from None


@dataclass(frozen=True, slots=True)
class Member:
    user: str
    transport: str


@dataclass(frozen=True, slots=True)
class Presence:
    """Someone joined or left; ``members`` lists at most the server's
    ``--presence-limit`` of them, ``count`` is the total."""

    room: str
    event: str  # "join" or "leave"
    user: str
    transport: str
    count: int
    members: tuple[Member, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "presence",
            "room": self.room,
            "event": self.event,
            "user": self.user,
            "transport": self.transport,
            "count": self.count,
            "members": [{"user": m.user, "transport": m.transport} for m in self.members],
        }


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages after ``since`` are no longer held: what follows starts at
    ``first_id`` (``None``: nothing is held)."""

    room: str
    since: str
    first_id: str | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "gap",
            "room": self.room,
            "since": self.since,
            "first_id": self.first_id,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """An ``error`` event the server sent that answers none of our sends."""

    code: str
    detail: str
    client_id: str | None = None  # the send it answers, when it names one

    def to_dict(self) -> dict[str, Any]:
        out = {"type": "error", "code": self.code, "detail": self.detail}
        return out if self.client_id is None else {**out, "client_id": self.client_id}


Event = Message | Presence | Gap | ErrorEvent


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_message(data: dict[str, Any]) -> Message:
    msg_id = str(data["id"])
    id_key(msg_id)
    return Message.from_body(str(data["room"]), msg_id, data)


def parse_event(data: dict[str, Any]) -> Event | None:
    """The event one JSON object stands for; ``None`` for a type this client
    does not know (a newer server). Raises ``KeyError``/``ValueError``/
    ``TypeError`` on a malformed object."""
    kind = data.get("type")
    if kind == "message":
        return parse_message(data)
    if kind == "presence":
        return Presence(
            room=str(data["room"]),
            event=str(data["event"]),
            user=str(data["user"]),
            transport=str(data["transport"]),
            count=int(data.get("count", len(data.get("members", [])))),
            members=tuple(
                Member(str(m["user"]), str(m["transport"])) for m in data.get("members", [])
            ),
        )
    if kind == "gap":
        return Gap(
            room=str(data["room"]),
            since=str(data["since"]),
            first_id=_opt_str(data.get("first_id")),
            detail=str(data.get("detail", "")),
        )
    if kind == "error":
        return ErrorEvent(
            code=str(data.get("code", "error")),
            detail=str(data.get("detail", "")),
            client_id=_opt_str(data.get("client_id")),
        )
    return None
