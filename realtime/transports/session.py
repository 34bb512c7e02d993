"""The one connection lifecycle every streaming transport shares.

A :class:`Session` is a subscriber connection from its connect log line to
its disconnect line: it holds a place under the per-address connection cap,
names the presence member, joins the hub with the transport's sink while the
transport serves the connection, and records how the connection ended. A
transport brings only its sink (write bytes / close with a reason / refuse
when history is unavailable) and its serving loop.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from aiohttp import web

from ..core.ports import BrokerUnavailable, Member
from ..core.room import Sink, Subscriber
from ..logs import event
from .guard import GUARD, Target
from .state import HUB

log = logging.getLogger("realtime.conn")


class EdgeSink(Sink, Protocol):
    async def refuse(self, exc: BrokerUnavailable) -> None:
        """Tell the client the room's history cannot be read now (it retries)."""


def socket_transport(request: web.Request) -> asyncio.Transport:
    """The connection's transport, which sinks write pre-encoded bytes to."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away before the stream started")
    return transport


class Session:
    def __init__(self, request: web.Request, target: Target, transport: str) -> None:
        self.request = request
        self.target = target
        self.id = secrets.token_hex(3)
        self.member = Member(self.id, target.user, transport)
        self.started = time.monotonic()
        self.why = "client closed"
        self.code: int | None = None

    async def run(
        self,
        sink: EdgeSink,
        serve: Callable[[Subscriber], Awaitable[None]],
        *,
        presence: bool = True,
    ) -> None:
        """Join the room with ``sink`` and ``serve`` the connection until it ends."""
        hub = self.request.app[HUB]
        target = self.target
        try:
            async with hub.join(
                target.room, self.member, sink, target.since, presence=presence
            ) as sub:
                await serve(sub)
        except BrokerUnavailable as exc:
            self.why = f"history unavailable: {exc}"
            await sink.refuse(exc)
            return
        if sub.close_reason is not None:
            self.why = sub.close_reason.name.lower()

    def _log(self, name: str, level: int, **fields: object) -> None:
        t = self.target
        event(
            log,
            name,
            level,
            conn=self.id,
            transport=self.member.transport,
            room=t.room,
            user=t.user,
            **fields,
        )


@asynccontextmanager
async def session(
    request: web.Request, target: Target, transport: str, *, level: int = logging.INFO
) -> AsyncIterator[Session]:
    """``async with session(request, target, "ws") as s:`` — refused with 429
    over the per-address cap, before any upgrade; one log line each way
    (long-polling requests, one per answer, log at DEBUG)."""
    async with request.app[GUARD].connection(request):
        s = Session(request, target, transport)
        s._log("connect", level, peer=request.remote, since=target.since or "-")
        try:
            yield s
        except asyncio.CancelledError:
            s.why = "client gone"
            raise
        except Exception as exc:
            s.why = type(exc).__name__
            raise
        finally:
            s._log(
                "disconnect",
                level,
                duration=f"{time.monotonic() - s.started:.1f}s",
                reason=s.why,
                code=s.code if s.code is not None else "-",
            )
