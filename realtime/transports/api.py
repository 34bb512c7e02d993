"""The server API under ``/api/``: a sub-application a team's backend talks to.

Routes (see ``GET /api/openapi.json`` for the full description):

- ``POST /api/publish``                      (``api_publish.py``)
- ``GET  /api/rooms``, ``/api/rooms/{room}/history``, ``…/presence``,
  ``…/presence/stats``                         (``api_rooms.py``)
- ``POST /api/disconnect``                   (here)
- ``GET  /api/openapi.json``                 (``openapi.py``)

Every request passes :func:`api_auth.api_guard` first.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..core.ports import BrokerUnavailable
from ..core.protocol import ProtocolError, validate_room
from ..settings import Settings
from . import api_publish, api_rooms, openapi
from .api_auth import API_KEYS, ApiKeys, api_guard
from .errors import json_response, protocol_error, unavailable
from .state import HUB, SETTINGS

REASON_MAX = 100  # bytes: a WebSocket close reason holds at most 123
DEFAULT_REASON = "disconnected by the server"


def parse_disconnect(data: Any) -> tuple[str, str | None, str, bool]:
    """``{"user", "room"?, "reason"?, "reconnect"?}`` checked."""
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "expected a JSON object")
    user = data.get("user")
    if not isinstance(user, str) or not 1 <= len(user) <= 32 or not user.isprintable():
        raise ProtocolError("bad_user", "'user' must be a user name of 1-32 printable characters")
    room = data.get("room")
    if room is not None:
        if not isinstance(room, str):
            raise ProtocolError("bad_room", "'room' must be a room name")
        validate_room(room)
    reason = data.get("reason", DEFAULT_REASON)
    if (
        not isinstance(reason, str)
        or not reason.isprintable()
        or not 1 <= len(reason.encode()) <= REASON_MAX
    ):
        raise ProtocolError("bad_reason", f"'reason' must be 1-{REASON_MAX} bytes of text")
    reconnect = data.get("reconnect", False)
    if not isinstance(reconnect, bool):
        raise ProtocolError("bad_message", "'reconnect' must be true or false")
    return user, room, reason, reconnect


async def disconnect(request: web.Request) -> web.Response:
    """``POST /api/disconnect``: close a user's connections on every process."""
    settings = request.config_dict[SETTINGS]
    data = await api_publish.read_json(request, settings.max_frame_bytes)
    try:
        user, room, reason, reconnect = parse_disconnect(data)
    except ProtocolError as exc:
        raise protocol_error(exc) from None
    try:
        count = await request.config_dict[HUB].disconnect(
            user, room=room, reason=reason, reconnect=reconnect
        )
    except BrokerUnavailable as exc:
        raise unavailable(exc) from None
    return json_response({"disconnected": count})


async def spec(request: web.Request) -> web.Response:
    """``GET /api/openapi.json``."""
    return json_response(openapi.document())


def create_api(settings: Settings) -> web.Application:
    """The ``/api/`` sub-application, mounted with ``app.add_subapp``."""
    api = web.Application(middlewares=[api_guard])
    api[API_KEYS] = ApiKeys(settings.api_key, settings.api_rate_limit)
    api.add_routes(
        [
            web.post("/publish", api_publish.publish),
            web.post("/disconnect", disconnect),
            web.get("/rooms", api_rooms.rooms),
            web.get("/rooms/{room}/history", api_rooms.history),
            web.get("/rooms/{room}/presence", api_rooms.presence),
            web.get("/rooms/{room}/presence/stats", api_rooms.presence_stats),
            web.get("/openapi.json", spec),
        ]
    )
    return api
