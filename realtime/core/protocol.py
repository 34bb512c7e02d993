"""Message types, validation and JSON encoding shared by every transport.

Nothing here knows about sockets or HTTP: it turns client input into a
validated :class:`Draft` (or a :class:`ProtocolError` with a stable code) and
turns stored messages and presence changes into :class:`Event` objects whose
wire encodings are computed once and shared by every subscriber.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

ROOM_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
USER_MAX = 32
CLIENT_ID_MAX = 64
# Room for everything but the text in an escaped send request: 12 bytes per
# character of client_id and user, the keys and "send" escaped, punctuation.
ENVELOPE_BYTES = 12 * (CLIENT_ID_MAX + USER_MAX) + 1024


class ProtocolError(Exception):
    """Bad client input: a stable machine-readable code and a human detail."""

    def __init__(self, code: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "detail": self.detail}


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def validate_room(name: str) -> str:
    if not ROOM_RE.fullmatch(name):
        raise ProtocolError(
            "bad_room",
            "room names are 1-64 characters of letters, digits, '-', '_' and '.'",
        )
    return name


def default_user() -> str:
    return f"anon-{secrets.token_hex(2)}"


def validate_user(name: str | None) -> str:
    """Return a valid user name; a missing or blank one becomes ``anon-xxxx``."""
    if name is None or name.strip() == "":
        return default_user()
    if len(name) > USER_MAX or not name.isprintable():
        raise ProtocolError("bad_user", f"user names are 1-{USER_MAX} printable characters")
    return name


def parse_id(value: str) -> tuple[int, int]:
    """Sort key of a message id: ``"17"`` or a Redis stream id ``"1700-3"``."""
    head, sep, tail = value.partition("-")
    try:
        if not (value.isascii() and head.isdigit()) or (sep and not tail.isdigit()):
            raise ValueError
        return int(head), int(tail) if sep else 0
    except ValueError:
        raise ProtocolError("bad_id", f"not a message id: {value[:40]!r}") from None


def validate_since(value: str | None) -> str | None:
    """A resume point from ``?since=`` or ``Last-Event-ID`` (empty means none)."""
    if value is None or value == "":
        return None
    parse_id(value)
    return value


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated message that is not stored yet (it has no id)."""

    room: str
    user: str
    text: str
    client_id: str | None


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message: what every subscriber of the room receives."""

    room: str
    id: str
    user: str
    text: str
    ts: float
    client_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "room": self.room,
            "id": self.id,
            "user": self.user,
            "text": self.text,
            "ts": self.ts,
        }
        if self.client_id is not None:
            out["client_id"] = self.client_id
        return out

    @classmethod
    def from_body(cls, room: str, id: str, data: dict[str, Any]) -> Message:
        """A message from its stored fields (``user``, ``text``, ``ts``, ``client_id``)."""
        return cls(
            room=room,
            id=id,
            user=str(data["user"]),
            text=str(data["text"]),
            ts=float(data["ts"]),
            client_id=None if data.get("client_id") is None else str(data["client_id"]),
        )


def _utf8(value: str, name: str) -> bytes:
    """JSON can spell a lone surrogate (``"\\ud800"``); UTF-8 cannot carry it."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError("bad_message", f"{name!r} is not valid Unicode") from None


def parse_send(data: Any, *, room: str, user: str, max_bytes: int) -> Draft:
    """Validate a decoded send request (``{"type":"send","text":…}``)."""
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "expected a JSON object")
    kind = data.get("type", "send")
    if kind != "send":
        raise ProtocolError("bad_message", f"unknown message type {str(kind)[:40]!r}")
    text = data.get("text")
    if not isinstance(text, str):
        raise ProtocolError("bad_message", "'text' must be a string")
    if text.strip() == "":
        raise ProtocolError("empty_text", "'text' must not be empty")
    if len(_utf8(text, "text")) > max_bytes:
        raise ProtocolError("too_long", f"'text' is over {max_bytes} bytes", status=413)
    client_id = data.get("client_id")
    if client_id is not None and (not isinstance(client_id, str) or len(client_id) > CLIENT_ID_MAX):
        raise ProtocolError("bad_message", f"'client_id' must be a string of <= {CLIENT_ID_MAX}")
    if client_id is not None:
        _utf8(client_id, "client_id")
    return Draft(room=room, user=user, text=text, client_id=client_id)


def decode_json(raw: str | bytes, what: str = "the message") -> Any:
    """A client's JSON, or ``bad_json``: whatever the decoder raises on it
    (``ValueError``, ``RecursionError`` on deep nesting, …) is the client's
    input being bad, never the server failing."""
    try:
        return json.loads(raw)
    except Exception:
        raise ProtocolError("bad_json", f"{what} is not valid JSON") from None


def max_json_bytes(max_text_bytes: int) -> int:
    """The largest send request whose text may still fit ``max_text_bytes``.

    The text limit is on UTF-8 bytes, but a client may write any character
    as a ``\\uXXXX`` escape: 6 bytes per UTF-16 code unit, so 6 bytes for a
    1-byte character (the worst case), 6 for 2 or 3 bytes, 12 for 4. The rest
    of the object (``type``, ``client_id`` of 64 characters, ``user`` of
    ``USER_MAX``, keys, all escaped the same way) fits in ``ENVELOPE_BYTES``.
    """
    return 6 * max_text_bytes + ENVELOPE_BYTES


def parse_send_json(raw: str, *, room: str, user: str, max_bytes: int) -> Draft:
    return parse_send(decode_json(raw), room=room, user=user, max_bytes=max_bytes)


class Wire(Protocol):
    """One wire format (a WebSocket text frame, an SSE event block)."""

    def encode(self, event: Event) -> bytes: ...


class Event:
    """Something a room sends to its subscribers.

    ``kind`` is the JSON ``type`` (and the SSE ``event:`` name); ``id`` is the
    message id for stored messages and ``None`` otherwise. Encodings are
    cached per wire so each one is computed once, not once per subscriber.
    """

    __slots__ = ("_encoded", "id", "json", "kind", "payload")

    def __init__(self, kind: str, payload: dict[str, Any], id: str | None = None):
        self.kind = kind
        self.id = id
        self.payload = payload
        self.json = dumps(payload)
        self._encoded: dict[int, bytes] = {}

    @classmethod
    def message(cls, msg: Message) -> Event:
        return cls("message", msg.to_dict(), msg.id)

    def encoded(self, wire: Wire) -> bytes:
        key = id(wire)
        data = self._encoded.get(key)
        if data is None:
            data = self._encoded[key] = wire.encode(self)
        return data

    def __repr__(self) -> str:
        return f"Event({self.kind!r}, id={self.id!r})"
