"""What every handler shares: app state keys, request parsing, error replies,
and the connect/disconnect log lines."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from ..hub import Hub
from ..logs import event
from ..protocol import ProtocolError, dumps, validate_room, validate_since, validate_user
from ..settings import Settings

HUB = web.AppKey("hub", Hub)
SETTINGS = web.AppKey("settings", Settings)
# Close handshakes under way; shutdown waits for them before dropping sockets.
CLOSING: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("closing")

log = logging.getLogger("realtime.conn")


class JsonError(web.HTTPException):
    """An HTTP error whose body is ``{"type":"error","code":…,"detail":…}``."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str]) -> None:
        self.status_code = status
        super().__init__(
            text=dumps({"type": "error", "code": code, "detail": detail}),
            content_type="application/json",
            headers=headers or None,
        )


def json_error(status: int, code: str, detail: str, **headers: str) -> web.HTTPException:
    """An HTTP error with a JSON body, ready to raise."""
    return JsonError(status, code, detail, headers)


def socket_transport(request: web.Request) -> asyncio.Transport:
    """The connection's transport, which sinks write pre-encoded bytes to."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away before the stream started")
    return transport


def protocol_error(exc: ProtocolError) -> web.HTTPException:
    return json_error(exc.status, exc.code, exc.detail)


@dataclass(slots=True)
class Target:
    """Who wants to join which room, from where: parsed before any upgrade."""

    room: str
    user: str
    since: str | None
    user_from_token: bool = False


def parse_target(request: web.Request, since: str | None) -> Target:
    try:
        return Target(
            room=validate_room(request.match_info.get("room", "lobby")),
            user=validate_user(request.query.get("user")),
            since=validate_since(since),
        )
    except ProtocolError as exc:
        raise protocol_error(exc) from None


class ConnLog:
    """One line when a connection opens and one when it closes.

    Used as ``with ConnLog(…) as conn:`` around a connection's life; the
    handler sets ``conn.why`` (and ``conn.code``) as it learns how it ended,
    and an exception leaving the block names itself.
    """

    def __init__(self, transport: str, target: Target, peer: Any) -> None:
        self.id = secrets.token_hex(3)
        self.transport = transport
        self.target = target
        self.started = time.monotonic()
        self.why = "client closed"
        self.code: int | None = None
        event(
            log,
            "connect",
            conn=self.id,
            transport=transport,
            room=target.room,
            user=target.user,
            peer=peer,
            since=target.since or "-",
        )

    def __enter__(self) -> ConnLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is asyncio.CancelledError:
            self.why = "client gone"
        elif kind is not None:
            self.why = kind.__name__
        self.closed(self.why, self.code)

    def closed(self, why: str, code: int | None = None) -> None:
        event(
            log,
            "disconnect",
            conn=self.id,
            transport=self.transport,
            room=self.target.room,
            user=self.target.user,
            duration=f"{time.monotonic() - self.started:.1f}s",
            reason=why,
            code=code if code is not None else "-",
        )
