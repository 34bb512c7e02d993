"""Reading rooms through the server API: history pages, presence, the room list.

Private rooms are readable here without a user token: the API key is the
backend's credential. Cursors are opaque to clients: pass ``next`` back as
``since`` (forward), ``before`` (``reverse=1``) or ``cursor`` (room list).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..core.ports import BrokerUnavailable, Member
from ..core.protocol import ProtocolError, validate_room, validate_since
from .errors import json_error, json_response, protocol_error, unavailable
from .state import HUB

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def parse_limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise json_error(400, "bad_limit", f"limit must be 1-{MAX_LIMIT}")
    return int(raw)


def parse_flag(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name, "0").lower()
    if raw not in ("0", "1", "true", "false", ""):
        raise json_error(400, "bad_flag", f"{name} must be 1 or 0")
    return raw in ("1", "true")


def room_of(request: web.Request) -> str:
    try:
        return validate_room(request.match_info["room"])
    except ProtocolError as exc:
        raise protocol_error(exc) from None


async def history(request: web.Request) -> web.Response:
    """``GET /api/rooms/{room}/history?since=&before=&limit=&reverse=1``.

    Oldest first after ``since`` (or from the oldest held), or with
    ``reverse=1`` newest first before ``before`` (or from the newest); both
    bounds are exclusive and may be combined.
    """
    room = room_of(request)
    query = request.query
    try:
        since = validate_since(query.get("since"))
        before = validate_since(query.get("before"))
    except ProtocolError as exc:
        raise protocol_error(exc) from None
    limit = parse_limit(query)
    reverse = parse_flag(query, "reverse")
    try:
        page = await request.config_dict[HUB].page(
            room, since=since, before=before, limit=limit, reverse=reverse
        )
    except BrokerUnavailable as exc:
        raise unavailable(exc) from None
    messages = page.messages
    return json_response(
        {
            "room": room,
            "messages": [m.to_dict() for m in messages],
            "next": messages[-1].id if page.more and messages else None,
        }
    )


def by_user(members: list[Member]) -> list[dict[str, Any]]:
    """One entry per user: connections in all, and per transport."""
    users: dict[str, Counter[str]] = {}
    for m in members:
        users.setdefault(m.user, Counter())[m.transport] += 1
    return [
        {"user": user, "connections": sum(c.values()), "transports": dict(sorted(c.items()))}
        for user, c in sorted(users.items())
    ]


async def _members(request: web.Request, room: str) -> list[Member]:
    try:
        return await request.config_dict[HUB].members(room)
    except BrokerUnavailable as exc:
        raise unavailable(exc) from None


async def presence(request: web.Request) -> web.Response:
    """``GET /api/rooms/{room}/presence``: who is connected, on every process."""
    room = room_of(request)
    members = await _members(request, room)
    return json_response({"room": room, "members": by_user(members)})


async def presence_stats(request: web.Request) -> web.Response:
    """``GET /api/rooms/{room}/presence/stats``: counts only."""
    room = room_of(request)
    members = await _members(request, room)
    transports = Counter(m.transport for m in members)
    return json_response(
        {
            "room": room,
            "connections": len(members),
            "users": len({m.user for m in members}),
            "by_transport": dict(sorted(transports.items())),
        }
    )


async def rooms(request: web.Request) -> web.Response:
    """``GET /api/rooms?prefix=&cursor=&limit=``: rooms by name, a page at a time."""
    query = request.query
    prefix = query.get("prefix", "")
    cursor = query.get("cursor", "")
    limit = parse_limit(query)
    try:
        known = await request.config_dict[HUB].rooms()
    except BrokerUnavailable as exc:
        raise unavailable(exc) from None
    names = sorted(n for n in known if n.startswith(prefix) and n > cursor)
    page = names[:limit]
    return json_response(
        {
            "rooms": [
                {"room": n, "members": known[n], "total": sum(known[n].values())} for n in page
            ],
            "next": page[-1] if len(names) > limit else None,
        }
    )
