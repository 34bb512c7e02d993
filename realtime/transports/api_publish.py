"""``POST /api/publish``: one message to one room or to up to 1,000 rooms.

A bad room or text fails only its own entry in ``results`` (with the public
POST's error codes); a request that is not a valid publish at all (not JSON,
no rooms, more than 1,000) gets a 400 and publishes nothing. With an
``idempotency_key`` a retry within ``--idempotency-window`` returns the first
id and stores nothing new.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from ..core.ports import BrokerUnavailable
from ..core.protocol import Draft, ProtocolError, parse_send, validate_room, validate_user
from .errors import json_error, json_response, protocol_error
from .state import HUB, SETTINGS

MAX_ROOMS = 1000
KEY_MAX = 128
DEFAULT_USER = "server"
# Rooms published to at once: enough to fill a SQLite batch or the Redis pool.
CONCURRENCY = 32


async def read_json(request: web.Request, limit: int) -> Any:
    """The body as JSON, or the public POST's 415/413/400 answers."""
    if request.content_type != "application/json":
        raise json_error(415, "unsupported_media_type", "send Content-Type: application/json")
    too_large = json_error(413, "too_large", f"the body is over {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = await request.clone(client_max_size=limit).read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    try:
        return json.loads(raw)
    except ValueError:
        raise json_error(400, "bad_json", "the body is not valid JSON") from None


def body_limit(max_frame_bytes: int) -> int:
    """A publish body: the text with its escapes, and 1,000 quoted room names."""
    return max_frame_bytes + MAX_ROOMS * 70 + 1024


def parse_rooms(data: dict[str, Any]) -> list[Any]:
    """The target rooms, unvalidated (a bad name fails only its own entry)."""
    if ("room" in data) == ("rooms" in data):
        raise ProtocolError("bad_message", "give either 'room' or 'rooms'")
    if "room" in data:
        return [data["room"]]
    rooms = data["rooms"]
    if not isinstance(rooms, list) or not rooms:
        raise ProtocolError("bad_message", "'rooms' must be a non-empty list of room names")
    if len(rooms) > MAX_ROOMS:
        raise ProtocolError("too_many_rooms", f"at most {MAX_ROOMS} rooms per publish")
    return rooms


def parse_user(data: dict[str, Any]) -> str:
    user = data.get("user", DEFAULT_USER)
    if not isinstance(user, str) or not user.strip():
        raise ProtocolError("bad_user", "'user' must be a non-empty string")
    return validate_user(user)


def parse_key(data: dict[str, Any]) -> str | None:
    key = data.get("idempotency_key")
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= KEY_MAX or not key.isprintable():
        raise ProtocolError(
            "bad_idempotency_key", f"'idempotency_key' must be 1-{KEY_MAX} printable characters"
        )
    return key


def _error(room: Any, exc: ProtocolError) -> dict[str, Any]:
    name = room if isinstance(room, str) else None
    return {"room": name, "error": {"code": exc.code, "detail": exc.detail}}


async def publish(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS]
    hub = request.config_dict[HUB]
    data = await read_json(request, body_limit(settings.max_frame_bytes))
    try:
        if not isinstance(data, dict):
            raise ProtocolError("bad_message", "expected a JSON object")
        rooms = parse_rooms(data)
        user = parse_user(data)
        key = parse_key(data)
    except ProtocolError as exc:
        raise protocol_error(exc) from None
    # The text is the same for every room: checked once, reported per room.
    text_error: ProtocolError | None = None
    try:
        parse_send(data, room="-", user=user, max_bytes=settings.max_message_bytes)
    except ProtocolError as exc:
        text_error = exc
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(room: Any) -> dict[str, Any]:
        try:
            if not isinstance(room, str):
                raise ProtocolError("bad_room", "a room name must be a string")
            validate_room(room)
            if text_error is not None:
                raise text_error
        except ProtocolError as exc:
            return _error(room, exc)
        draft = Draft(room, user, data["text"], data.get("client_id"))
        async with gate:
            try:
                if key is None:
                    msg = await hub.publish(draft)
                    return {"room": room, "id": msg.id}
                msg_id, duplicate = await hub.publish_once(draft, key)
            except BrokerUnavailable as exc:
                return _error(room, ProtocolError("unavailable", f"message not stored: {exc}"))
        out: dict[str, Any] = {"room": room, "id": msg_id}
        if duplicate:
            out["duplicate"] = True
        return out

    results = await asyncio.gather(*(one(room) for room in rooms))
    return json_response({"results": results})
