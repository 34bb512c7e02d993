"""Where things live in Redis, and how a stored message is read back.

``{room}`` is a validated room name:

- ``realtime:room:{room}``    a stream, one entry per message; the entry id
  *is* the message id, so every process hands out and resumes from the same
  ids. Trimmed with ``XADD MAXLEN ~ history_size``.
- ``realtime:chan:{room}``    the room's pub/sub channel. :data:`PUBLISH_LUA`
  does ``XADD`` and ``PUBLISH`` in one step, so the pub/sub order is the id
  order on every process. Presence events go over the same channel.
- ``realtime:members:{room}`` a hash ``{process}/{conn_id}`` -> member JSON.
- ``realtime:proc:{process}`` a heartbeat key with a TTL; members of a
  process whose heartbeat expired (a crash) are ignored and removed.
- ``realtime:rooms``          the set of room names ever used.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...core.protocol import Message

PREFIX = "realtime:"
ROOMS_KEY = PREFIX + "rooms"
CHANNEL_PREFIX = PREFIX + "chan:"
CHANNEL_PATTERN = CHANNEL_PREFIX + "*"

# XADD and PUBLISH in one atomic step: pub/sub order == id order.
PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], 'm' .. id .. ' ' .. ARGV[2])
return id
"""


def stream_key(room: str) -> str:
    return f"{PREFIX}room:{room}"


def channel(room: str) -> str:
    return CHANNEL_PREFIX + room


def members_key(room: str) -> str:
    return f"{PREFIX}members:{room}"


def proc_key(proc: str) -> str:
    return f"{PREFIX}proc:{proc}"


def after(entry_id: str) -> str:
    """The exclusive range start ``(id`` for XRANGE/XREVRANGE."""
    return "(" + entry_id


def safe_url(url: str) -> str:
    """The URL without its password, for log lines and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def to_message(room: str, entry_id: str, body: str) -> Message:
    return Message.from_body(room, entry_id, json.loads(body))


def to_messages(room: str, entries: Any, *, newest_first: bool = False) -> list[Message]:
    """Stream entries (``[(id, {"m": json})…]``) as messages, oldest first."""
    items: list[tuple[str, dict[str, str]]] = list(entries or [])
    if newest_first:
        items.reverse()
    return [to_message(room, str(i), str(f["m"])) for i, f in items]
