"""How to speak to a chat server: its routes, its send format, when a subscriber is live.

``realtime`` has rooms, presence and ids; the reference peers of ``--peer``
(a Bun + Hono server, a naive aiohttp loop) serve one room at ``/ws``, ``/sse``
and ``POST /send``, broadcast ``{"id", "user", "text", "ts"}`` and announce
nobody's arrival, so their subscribers are live once connected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class Dialect:
    name: str
    paths: dict[str, str]  # transport ("ws", "sse", "poll") -> path with {room} and {user}
    post_path: str  # with {room}
    post_ok: int  # the status of an accepted POST
    health_path: str
    join_event: bool  # live once our own presence join comes back (else once connected)
    client_ids: bool  # a send carries a client_id and a user (else the text alone)

    def path(self, transport: str, room: str, user: str) -> str:
        if transport not in self.paths:
            raise ValueError(f"{self.name} does not serve {transport}")
        return self.paths[transport].format(room=quote(room, safe=""), user=quote(user, safe=""))

    def post_url(self, base_url: str, room: str) -> str:
        return base_url + self.post_path.format(room=quote(room, safe=""))

    def post_body(self, text: str, seq: int) -> dict[str, Any]:
        if self.client_ids:
            return {"text": text, "user": "pub", "client_id": str(seq)}
        return {"text": text}

    def send_frame(self, text: str, seq: int) -> str:
        if self.client_ids:
            return json.dumps({"type": "send", "text": text, "client_id": str(seq)})
        return json.dumps({"text": text})


REALTIME = Dialect(
    "realtime",
    {
        "ws": "/rooms/{room}/ws?user={user}",
        "sse": "/rooms/{room}/events?user={user}",
        "poll": "/rooms/{room}/poll?user={user}",
    },
    "/rooms/{room}/messages",
    201,
    "/healthz",
    join_event=True,
    client_ids=True,
)
PEER = Dialect(
    "peer",
    {"ws": "/ws", "sse": "/sse"},
    "/send",
    200,
    "/health",
    join_event=False,
    client_ids=False,
)


@dataclass(frozen=True)
class Endpoint:
    """One room of one server over one transport: what a subscriber connects to."""

    base_url: str
    dialect: Dialect
    transport: str  # "ws" | "sse" | "poll"
    room: str

    def path(self, user: str) -> str:
        return self.dialect.path(self.transport, self.room, user)
