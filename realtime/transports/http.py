"""Plain HTTP routes: send by POST, history, the room list, health."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from ..core.ports import BrokerUnavailable
from ..core.protocol import ProtocolError, decode_json, parse_send, validate_room, validate_user
from . import sse, websocket
from .errors import json_error, json_response, protocol_error, too_large, unavailable
from .guard import GUARD
from .state import HUB, SETTINGS

# Presence lists connections that stay open; a long-polling request is not one.
MEMBER_TRANSPORTS = (websocket.NAME, sse.NAME)


async def post_message(request: web.Request) -> web.Response:
    """``POST /rooms/{room}/messages`` with ``{"text":…, "user":…}``: 201 + the message."""
    guard = request.app[GUARD]
    guard.check_origin(request)
    target = guard.admit(request, None, subscribe=False)
    settings = request.app[SETTINGS]
    if request.content_type != "application/json":
        raise json_error(415, "unsupported_media_type", "send Content-Type: application/json")
    limit = settings.max_frame_bytes
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    try:
        async with asyncio.timeout(settings.request_timeout):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit) from None
    except TimeoutError:
        raise json_error(
            408, "request_timeout", f"the body did not arrive within {settings.request_timeout} s"
        ) from None
    if len(raw) > limit:
        raise too_large(limit)
    try:
        data = decode_json(raw, "the body")
        user = target.user
        # A token names the user; then a "user" in the body is ignored.
        if not target.user_from_token and isinstance(data, dict) and "user" in data:
            if not isinstance(data["user"], str):
                raise ProtocolError("bad_user", "'user' must be a string")
            user = validate_user(data["user"])
        draft = parse_send(data, room=target.room, user=user, max_bytes=settings.max_message_bytes)
    except ProtocolError as exc:
        raise protocol_error(exc) from None
    wait = guard.take_send(request, None, "post")
    if wait > 0:
        raise guard.rate_limited(wait)
    try:
        msg = await request.app[HUB].publish(draft)
    except BrokerUnavailable as exc:
        raise unavailable(exc, "message not stored") from None
    return json_response(msg.to_dict(), status=201)


async def get_messages(request: web.Request) -> web.Response:
    """``GET /rooms/{room}/messages?since=&limit=``: history, oldest first."""
    target = request.app[GUARD].admit(request, request.query.get("since"))
    settings = request.app[SETTINGS]
    raw = request.query.get("limit", str(settings.replay))
    limit = _limit(raw, settings.replay, settings.history_size)
    try:
        history = await request.app[HUB].history(target.room, target.since, limit)
    except BrokerUnavailable as exc:
        raise unavailable(exc) from None
    return json_response(
        {
            "room": target.room,
            "messages": [m.to_dict() for m in history.messages],
            "gap": history.gap,
        }
    )


ROOMS_PAGE = 100  # rooms per GET /rooms page unless ?limit= says otherwise
ROOMS_MAX_PAGE = 1000


def _limit(raw: str | None, default: int, most: int) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= most:
        raise json_error(400, "bad_limit", f"limit must be 1-{most}")
    return int(raw)


async def list_rooms(request: web.Request) -> web.Response:
    """``GET /rooms?limit=&cursor=``: known rooms by name with their member
    counts per transport, a page at a time; ``next`` is the ``cursor`` of the
    next page (null on the last)."""
    gate = request.app[GUARD].gate
    limit = _limit(request.query.get("limit"), ROOMS_PAGE, ROOMS_MAX_PAGE)
    cursor = request.query.get("cursor") or None
    if cursor is not None:
        try:
            validate_room(cursor)
        except ProtocolError:
            raise json_error(400, "bad_cursor", "cursor is a room name from 'next'") from None
    try:
        rooms = await request.app[HUB].rooms()
    except BrokerUnavailable as exc:
        raise unavailable(exc) from None
    names = sorted(
        name
        for name in rooms
        if (cursor is None or name > cursor) and not gate.is_private(name)  # not advertised
    )
    listed = []
    for name in names[:limit]:
        members = {t: rooms[name].get(t, 0) for t in MEMBER_TRANSPORTS}
        listed.append({"room": name, "members": members, "total": sum(members.values())})
    more = len(names) > limit
    return json_response({"rooms": listed, "next": listed[-1]["room"] if more else None})


async def healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    ok = hub.healthy
    body = {
        "status": "ok" if ok else "degraded",
        "broker": hub.backend.name,
        "broker_ok": ok,
        "pid": os.getpid(),
    }
    if hub.backend.status is not None:
        body.update(hub.backend.status())
    return json_response(body, status=200 if ok else 503)
