"""Where things live in Redis, and how a stored message is read back.

Every key of a room carries the room name in braces, a Redis Cluster hash
tag: all of them hash to one slot, so the append script touches one node and
the room's channel lives on that node too. ``{room}`` is a validated room
name (letters, digits, ``-_.``; never a brace):

- ``realtime:{room}:log``     a stream, one entry per message; the entry id
  *is* the message id, so every process hands out and resumes from the same
  ids. Trimmed with ``XADD MAXLEN ~ history_size``.
- ``realtime:{room}:chan``    the room's pub/sub channel. :data:`PUBLISH_LUA`
  does ``XADD`` and ``PUBLISH`` (``SPUBLISH`` in a cluster) in one step, so
  the pub/sub order is the id order on every process. Presence events go
  over the same channel.
- ``realtime:{room}:members`` a hash ``{process}/{conn_id}`` -> member JSON.
- ``realtime:{room}:counts``  a hash ``{process}`` -> how many members that
  process has in the room, kept by :data:`MEMBER_LUA` in the same step as the
  member: a join reads the room's count from P fields (P processes), not N.
- ``realtime:proc:{process}`` a heartbeat key with a TTL; members of a
  process whose heartbeat expired (a crash) are ignored and removed.
- ``realtime:{room}:once:{key}`` the id published with an idempotency key,
  expiring after the window; :data:`PUBLISH_ONCE_LUA` checks and sets it in
  the same step as the ``XADD``, so concurrent retries store one message.
- ``realtime:rooms``          the set of room names ever used (its own slot).
- ``realtime:{!control}:chan`` messages for every process (a user to
  disconnect), as ``c<json>``: not a room name, so no room shares it, and
  both buses listen to it as they listen to a room's channel.
"""

from __future__ import annotations

import json
from typing import Any

from ...core.protocol import Message, parse_id

PREFIX = "realtime:"
ROOMS_KEY = PREFIX + "rooms"
CHANNEL_PATTERN = PREFIX + "{*}:chan"  # braces are plain characters in a glob
CONTROL_ROOM = "!control"  # never a valid room name

# XADD and (S)PUBLISH in one atomic step: pub/sub order == id order. KEYS:
# the stream, the channel (same slot), and outside a cluster the rooms set;
# ARGV: max length, body, PUBLISH or SPUBLISH, room name.
PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[2])
if KEYS[3] then redis.call('SADD', KEYS[3], ARGV[4]) end
redis.call(ARGV[3], KEYS[2], 'm' .. id .. ' ' .. ARGV[2])
return id
"""

# The same, unless the idempotency key is known: then its first id. KEYS:
# the stream, the channel, the key (all in the room's slot), and outside a
# cluster the rooms set; ARGV: as above, then the window in milliseconds.
PUBLISH_ONCE_LUA = """
local seen = redis.call('GET', KEYS[3])
if seen then return {seen, 1} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[2])
if KEYS[4] then redis.call('SADD', KEYS[4], ARGV[4]) end
redis.call(ARGV[3], KEYS[2], 'm' .. id .. ' ' .. ARGV[2])
redis.call('SET', KEYS[3], id, 'PX', ARGV[5])
return {id, 0}
"""

# Members join (a field and its JSON) or leave (a field and ''), and the
# process's count moves by the fields this actually added or removed, so it
# stays the number of the process's fields however often a write is
# repeated; a count that reaches 0 is removed. KEYS: the members hash, the
# counts hash (one slot); ARGV: the process, then field, JSON-or-'' pairs.
# Returns the counts hash.
MEMBER_LUA = """
local step = 0
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    step = step - redis.call('HDEL', KEYS[1], ARGV[i])
  else
    step = step + redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
if step ~= 0 and redis.call('HINCRBY', KEYS[2], ARGV[1], step) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return redis.call('HGETALL', KEYS[2])
"""


def stream_key(room: str) -> str:
    return f"{PREFIX}{{{room}}}:log"


def channel(room: str) -> str:
    return f"{PREFIX}{{{room}}}:chan"


def room_of(chan: str) -> str:
    """The room of a channel name (the inverse of :func:`channel`)."""
    return chan.removeprefix(PREFIX + "{").removesuffix("}:chan")


def members_key(room: str) -> str:
    return f"{PREFIX}{{{room}}}:members"


def member_field(proc: str, conn_id: str) -> str:
    """A member's field in the room's member hash: ``{process}/{conn_id}``."""
    return f"{proc}/{conn_id}"


def fields_of(proc: str) -> str:
    """A MATCH pattern for every member field of ``proc``."""
    return glob_escape(proc) + "/*"


def counts_key(room: str) -> str:
    return f"{PREFIX}{{{room}}}:counts"


def once_key(room: str, key: str) -> str:
    return f"{PREFIX}{{{room}}}:once:{key}"


def proc_key(proc: str) -> str:
    return f"{PREFIX}proc:{proc}"


def after(entry_id: str) -> str:
    """The exclusive range start ``(id`` for XRANGE/XREVRANGE."""
    return "(" + entry_id


def exclusive(message_id: str) -> str:
    """A message id (``17`` or ``1700-3``) as an exclusive stream range bound."""
    ms, seq = parse_id(message_id)
    return f"({ms}-{seq}"


def to_message(room: str, entry_id: str, body: str) -> Message:
    return Message.from_body(room, entry_id, json.loads(body))


def to_messages(room: str, entries: Any, *, newest_first: bool = False) -> list[Message]:
    """Stream entries (``[(id, {"m": json})…]``) as messages, oldest first."""
    items: list[tuple[str, dict[str, str]]] = list(entries or [])
    if newest_first:
        items.reverse()
    return [to_message(room, str(i), str(f["m"])) for i, f in items]


def pairs(raw: Any) -> dict[str, str]:
    """A hash as a dict, from a script's or HRANDFIELD's flat [field, value, …]."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    items = [str(x) for x in raw or ()]
    return dict(zip(items[::2], items[1::2], strict=True))


def glob_escape(text: str) -> str:
    """``text`` matched literally in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
