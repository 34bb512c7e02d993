"""How to speak to a chat server: its routes, its send format, when a subscriber is live."""

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

    def path(self, transport: str, room: str, user: str) -> str:
        if transport not in self.paths:
            raise ValueError(f"{self.name} does not serve {transport}")
        return self.paths[transport].format(room=quote(room, safe=""), user=quote(user, safe=""))

    def post_url(self, base_url: str, room: str) -> str:
        return base_url + self.post_path.format(room=quote(room, safe=""))

    def post_body(self, text: str, seq: int) -> dict[str, Any]:
        return {"text": text, "user": "pub", "client_id": str(seq)}

    def send_frame(self, text: str, seq: int) -> str:
        return json.dumps({"type": "send", "text": text, "client_id": str(seq)})


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
