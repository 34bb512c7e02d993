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
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from aiohttp import web

from ..core.ports import BrokerUnavailable, Member
from ..core.room import Sink, Subscriber
from ..logs import event
from .direct import DirectSocket
from .errors import unavailable
from .expiry import Expiry
from .guard import GUARD, Target
from .state import HUB, SETTINGS

log = logging.getLogger("realtime.conn")
MIN_SNDBUF = 4096
MAX_SNDBUF = 256 * 1024


class EdgeSink(Sink, Protocol):
    async def refuse(self, exc: BrokerUnavailable) -> None:
        """Tell the client the room's history cannot be read now (it retries)."""

    def release(self) -> None:
        """The subscriber has left the room: close the descriptor the room
        wrote to (``transports.direct``)."""


def socket_transport(request: web.Request) -> asyncio.Transport:
    """The connection's transport, which sinks write pre-encoded bytes to."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away before the stream started")
    return transport


def bound_send_buffer(transport: asyncio.Transport, max_buffer: int) -> int:
    """Make the socket's kernel send buffer a quarter of ``max_buffer`` (256
    KiB at most) and return what the kernel then holds when full (it doubles
    the size asked for).

    Left alone, the kernel grows a socket's send buffer to megabytes, all of
    it unseen by ``--max-buffer-bytes``: a reader that stopped would be
    dropped only after the kernel's buffer filled up too. The room counts
    this figure toward the bound instead (``Sink.kernel_buffer``).
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    size = max(MIN_SNDBUF, min(max_buffer // 4, MAX_SNDBUF))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    held: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    return held


class SocketSink:
    """What the sinks of the socket transports (WebSocket, SSE) share: bytes
    go to the connection's transport, or straight to its socket
    (:mod:`.direct`), and the kernel's send buffer counts toward the bound."""

    def __init__(self, request: web.Request) -> None:
        self.writer = transport = socket_transport(request)
        self.kernel_buffer = bound_send_buffer(transport, request.app[SETTINGS].max_buffer_bytes)
        self._direct = DirectSocket(transport)
        self.descriptor = self._direct.descriptor

    def watch_unsent(self, on_change: Callable[[bool], None]) -> bool:
        return self._direct.watch(on_change)

    def release(self) -> None:
        self._direct.release()


class Session:
    def __init__(self, request: web.Request, target: Target, transport: str) -> None:
        self.request = request
        self.target = target
        self.id = secrets.token_hex(3)
        self.member = Member(self.id, target.user, transport)
        self.started = time.monotonic()
        self.why = "client closed"
        self.code: int | None = None
        self.sub: Subscriber | None = None
        self.expiry = Expiry(target.grant)  # the token's end, moved by a refresh

    async def run(
        self,
        sink: EdgeSink,
        serve: Callable[[Subscriber], Awaitable[None]],
        *,
        presence: bool = True,
    ) -> None:
        """Join the room with ``sink`` and ``serve`` the connection until it
        ends; then release what the room wrote to directly."""
        try:
            await self._run(sink, serve, presence)
        finally:
            sink.release()

    async def _run(
        self,
        sink: EdgeSink,
        serve: Callable[[Subscriber], Awaitable[None]],
        presence: bool,
    ) -> None:
        hub = self.request.app[HUB]
        target = self.target
        try:
            async with hub.join(
                target.room, self.member, sink, target.since, presence=presence
            ) as sub:
                self.sub = sub
                self.expiry.start(sub)
                try:
                    await serve(sub)
                finally:
                    self.expiry.stop()
        except BrokerUnavailable as exc:
            self.why = f"history unavailable: {exc}"
            await sink.refuse(exc)
            return
        self.why = self.dropped_for() or self.why

    def dropped_for(self) -> str | None:
        """Why the room dropped this subscriber (slow, shutdown), if it did:
        that is why the connection ended, however the socket then went."""
        if self.sub is None or self.sub.close_reason is None:
            return None
        return self.sub.close_reason.name.lower()

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
    hub = request.app[HUB]
    if not hub.healthy:
        # The join starts by reading the room's history: try that now, so a
        # broker that is down is a 503 before any upgrade, not a stream that
        # opens and ends.
        try:
            await hub.backend.log.history(target.room, None, 1)
        except BrokerUnavailable as exc:
            raise unavailable(exc, "not joined") from None
    async with request.app[GUARD].connection(request):
        s = Session(request, target, transport)
        s._log("connect", level, peer=request.remote, since=target.since or "-")
        try:
            yield s
        except asyncio.CancelledError:
            s.why = s.dropped_for() or "client gone"
            raise
        except ConnectionError:
            s.why = s.dropped_for() or "client reset"
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
