"""Subscribers over bare sockets: an ``asyncio.Protocol`` per connection, as load generators do.

No client library between the socket and the stamp scan, so the client's CPU
per delivery is the parsing it cannot avoid (the codec is
:mod:`benchmarks.rawclient`). The receive time is taken once per
``data_received`` call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

from benchmarks import rawclient
from benchmarks.dialect import Endpoint
from benchmarks.subscription import JOIN_B, MARK_B, Latencies, Subscription


class RawSubscriber(asyncio.Protocol):
    """Common part: send the request, read the response head, then the body.

    ``handshake`` resolves once the head checked out (or the connection
    failed); ``done`` once the connection is gone. ``closed`` of the
    subscription is set only when the stream ended without us closing it.
    Without ``join_event`` the subscriber is ready once the head checked out.
    """

    expect_status = b""

    def __init__(
        self, sub: Subscription, lat: Latencies, request: bytes, join_event: bool = True
    ) -> None:
        self.sub = sub
        self.lat = lat
        self.request = request
        self.join_event = join_event
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.in_body = False
        self.closing = False  # we are closing it: nothing to record
        self.ended = False  # the server ended the stream: ignore what follows
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self._user_b = f'"user":"{sub.user}"'.encode()

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.in_body:
            self.body(data, now)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > rawclient.MAX_HEAD:
                self.fail("response head too long")
            return
        head, rest = self.head[:end], self.head[end + 4 :]
        self.head = b""
        why = self.check_head(head)
        if why is not None:
            self.fail(why)
            return
        self.in_body = True
        self.head_ok()
        if not self.handshake.done():
            self.handshake.set_result(None)
        if rest:
            self.body(rest, now)

    def eof_received(self) -> bool | None:
        self.stream_ended(self.eof_reason())
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing and not self.ended:
            self.sub.closed = (
                f"connection lost: {type(exc).__name__}: {exc}"[:200]
                if exc is not None
                else self.eof_reason()
            )
            self.ended = True
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(self.sub.closed or "connection lost"))
        if not self.done.done():
            self.done.set_result(None)

    # -- shared helpers --
    def check_head(self, head: bytes) -> str | None:
        return rawclient.check_status(head, self.expect_status)

    def head_ok(self) -> None:
        if not self.join_event:
            self.sub.ready.set()

    def fail(self, why: str) -> None:
        """The server's answer is not what we asked for: record and drop it."""
        self.stream_ended(why)
        if self.transport is not None:
            self.transport.abort()

    def stream_ended(self, why: str) -> None:
        if not self.closing and not self.ended:
            self.sub.closed = why
        self.ended = True

    def eof_reason(self) -> str:
        return "connection closed by server"

    def maybe_join(self, payload: bytes) -> None:
        """Before ready: a cheap bytes test, then the same JSON check as aiohttp's."""
        if JOIN_B in payload and self._user_b in payload:
            self.sub.check_join(payload)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def body(self, data: bytes, now: int) -> None:
        raise NotImplementedError


class RawWebSocket(RawSubscriber):
    """RFC 6455 client: text frames are scanned, pings answered, close recorded."""

    expect_status = b"101"

    def __init__(
        self, sub: Subscription, lat: Latencies, path: str, host: str, join_event: bool = True
    ) -> None:
        self.key = rawclient.ws_key()
        super().__init__(sub, lat, rawclient.ws_upgrade_request(path, host, self.key), join_event)
        self.decoder = rawclient.FrameDecoder()
        self.fragments: list[bytes] | None = None  # a fragmented text message so far

    def check_head(self, head: bytes) -> str | None:
        return rawclient.check_ws_head(head, self.key)

    def eof_reason(self) -> str:
        return "websocket closed by server, code None"

    def body(self, data: bytes, now: int) -> None:
        if self.ended:
            return
        for frame in self.decoder.feed(data):
            self.frame(frame, now)
            if self.ended:
                return

    def frame(self, frame: rawclient.Frame, now: int) -> None:
        opcode, payload, fin, _ = frame
        if opcode == rawclient.TEXT and fin:
            self.text(payload, now)
        elif opcode == rawclient.TEXT:
            self.fragments = [payload]
        elif opcode == rawclient.CONTINUATION and self.fragments is not None:
            self.fragments.append(payload)
            if fin:
                whole = b"".join(self.fragments)
                self.fragments = None
                self.text(whole, now)
        elif opcode == rawclient.PING:
            if self.transport is not None and not self.closing:
                self.transport.write(rawclient.client_frame(rawclient.PONG, payload))
        elif opcode == rawclient.CLOSE:
            self.stream_ended(f"websocket closed by server, code {rawclient.close_code(payload)}")
            if self.transport is not None:
                self.transport.write(rawclient.client_frame(rawclient.CLOSE, payload[:2]))
                self.transport.close()
        # binary and pong: nothing to do

    def text(self, payload: bytes, now: int) -> None:
        sub = self.sub
        if MARK_B in payload:
            sub.scan(payload, MARK_B, b"~", now, self.lat)
        elif not sub.ready.is_set():
            self.maybe_join(payload)

    def close(self) -> None:
        if self.transport is not None and not self.closing and not self.ended:
            self.transport.write(
                rawclient.client_frame(rawclient.CLOSE, rawclient.close_payload(1000))
            )
        super().close()


class RawEventSource(RawSubscriber):
    """HTTP/1.1 chunked ``text/event-stream``: event blocks are scanned."""

    expect_status = b"200"

    def __init__(
        self, sub: Subscription, lat: Latencies, path: str, host: str, join_event: bool = True
    ) -> None:
        super().__init__(sub, lat, rawclient.sse_request(path, host), join_event)
        self.dechunker: rawclient.Dechunker | None = rawclient.Dechunker()
        self.events = b""  # event-stream text not yet ending in a blank line

    def check_head(self, head: bytes) -> str | None:
        why = super().check_head(head)
        if why is None and not rawclient.is_chunked(head):
            self.dechunker = None
        return why

    def eof_reason(self) -> str:
        return "event stream ended by server"

    def body(self, data: bytes, now: int) -> None:
        if self.ended:
            return
        if self.dechunker is not None:
            try:
                data = self.dechunker.feed(data)
            except rawclient.ChunkError as exc:
                self.fail(str(exc))
                return
        if data:
            self.event_text(data, now)
        if self.dechunker is not None and self.dechunker.finished:
            self.stream_ended("event stream ended by server")
            if self.transport is not None:
                self.transport.close()

    def event_text(self, data: bytes, now: int) -> None:
        buf = self.events + data if self.events else data
        end = rawclient.complete_events(buf)
        if not end:
            self.events = buf
            return
        block, self.events = buf[:end], buf[end:]
        if not self.sub.ready.is_set() and JOIN_B in block:
            self.sub.check_sse_joins(block)
        if MARK_B in block:
            self.sub.scan(block, MARK_B, b"~", now, self.lat)


async def connect(
    make: Callable[[str], RawSubscriber],
    base_url: str,
    connect_timeout: float,
    sem: asyncio.Semaphore,
) -> None:
    """Connect the protocol ``make(host)`` builds; return when its connection is gone."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the raw client speaks plain http only, not {base_url!r}")
    proto = make(parts.netloc)
    loop = asyncio.get_running_loop()
    try:
        async with sem, asyncio.timeout(connect_timeout):
            await loop.create_connection(lambda: proto, parts.hostname, parts.port or 80)
            await proto.handshake
        await proto.done
    finally:
        proto.close()


async def subscribe_raw(
    at: Endpoint, sub: Subscription, lat: Latencies, connect_timeout: float, sem: asyncio.Semaphore
) -> None:
    """One raw-socket subscriber, from connect to the end of its stream."""
    cls = RawWebSocket if at.transport == "ws" else RawEventSource
    path = at.path(sub.user)
    await connect(
        lambda host: cls(sub, lat, path, host, at.dialect.join_event),
        at.base_url,
        connect_timeout,
        sem,
    )
