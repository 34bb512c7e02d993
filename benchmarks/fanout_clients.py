"""The processes of the fan-out benchmark: subscriber workers and the publisher.

Each runs its own asyncio loop (uvloop when installed) and talks to the
controlling process over a ``multiprocessing`` pipe:

worker:    -> ("ready", report)   <- ("status",) -> ("status", n_open)
           <- ("finish", n_expected, deadline_ns)   -> ("result", result)
publisher: -> ("ready", None)     <- ("go",)  -> ("sent", window)          -> ("result", result)

Message text carries the publisher's stamp: ``~<monotonic_ns>~<seq>~xxxx…``.
Subscribers find it with ``find`` instead of decoding the JSON of every
event, because a Python client's per-frame cost is what limits the benchmark.
For the same reason the default subscriber (``WorkerJob.client == "raw"``) is
an ``asyncio.Protocol`` that parses WebSocket frames or the chunked SSE body
itself; ``"aiohttp"`` uses aiohttp's clients.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import resource
import signal
import struct
import time
from array import array
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, AnyStr, cast
from urllib.parse import quote, urlsplit

import aiohttp

MARK = '"text":"~'
MARK_B = MARK.encode()
CONNECT_CONCURRENCY = 64  # handshakes in flight per worker: stays under the listen backlog
MAX_POSTS_IN_FLIGHT = 256


# -- process setup -----------------------------------------------------------
def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run_child(main: Coroutine[Any, Any, None]) -> None:
    """Run a child's coroutine: Ctrl-C is the controller's job, uvloop if present."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def receive(conn: Connection) -> tuple[Any, ...]:
    """The controller's next command; EOF (controller gone) ends the process."""
    try:
        msg: tuple[Any, ...] = await asyncio.to_thread(conn.recv)
    except (EOFError, OSError):
        raise SystemExit(1) from None
    return msg


def tell(conn: Connection, message: tuple[Any, ...]) -> None:
    """Report to the controller; if it is gone, so is this process."""
    try:
        conn.send(message)
    except OSError:
        raise SystemExit(1) from None


def stamp_text(seq: int, payload_bytes: int) -> str:
    head = f"~{time.monotonic_ns()}~{seq}~"
    return head + "x" * max(0, payload_bytes - len(head))


def parse_stamp(data: AnyStr, start: int, tilde: AnyStr) -> tuple[int, int, int]:
    """``(send_ns, seq, end)`` of the stamp that begins at ``data[start]``."""
    j = data.find(tilde, start)
    k = data.find(tilde, j + 1)
    return int(data[start:j]), int(data[j + 1 : k]), k


# -- subscribers -------------------------------------------------------------
NONE_YET = 2**63 - 1


class Latencies:
    """Every delivery's latency, and per message the first and the last one, in ns."""

    __slots__ = ("all", "first", "last")

    def __init__(self, total: int) -> None:
        self.all: array[int] = array("q")
        self.first: array[int] = array("q", [NONE_YET]) * total
        self.last: array[int] = array("q", [-1]) * total

    def add(self, seq: int, value: int) -> None:
        self.all.append(value)
        if value < self.first[seq]:
            self.first[seq] = value
        if value > self.last[seq]:
            self.last[seq] = value


@dataclass
class WorkerJob:
    index: int
    base_url: str
    room: str
    transport: str  # "ws" | "sse"
    users: list[str]
    total: int  # messages the publisher will send: seq 0 .. total-1
    connect_timeout: float
    lifetime: float  # hard bound on the whole process, seconds
    client: str = "raw"  # "raw" (asyncio.Protocol per subscriber) | "aiohttp"


@dataclass
class Subscription:
    user: str
    seen: bytearray
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0
    duplicates: int = 0
    unknown: int = 0
    last_ns: int = 0
    closed: str | None = None  # why the stream ended before we closed it

    def scan(self, data: AnyStr, mark: AnyStr, tilde: AnyStr, now: int, lat: Latencies) -> None:
        """Record every stamped message in ``data`` (one frame or SSE block)."""
        i = data.find(mark)
        seen = self.seen
        while i >= 0:
            send_ns, seq, end = parse_stamp(data, i + len(mark), tilde)
            if not 0 <= seq < len(seen):
                self.unknown += 1
            elif seen[seq]:
                self.duplicates += 1
            else:
                seen[seq] = 1
                self.received += 1
                lat.add(seq, now - send_ns)
                self.last_ns = now
            i = data.find(mark, end)

    def check_join(self, payload: str | bytes) -> None:
        """Ready once our own presence ``join`` arrives: we are live in the room."""
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if (
            isinstance(event, dict)
            and event.get("type") == "presence"
            and event.get("event") == "join"
            and event.get("user") == self.user
        ):
            self.ready.set()

    def report(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "ready": self.ready.is_set(),
            "received": self.received,
            "duplicates": self.duplicates,
            "unknown": self.unknown,
            "closed": self.closed,
        }


async def _ws_stream(
    session: aiohttp.ClientSession,
    url: str,
    sub: Subscription,
    sem: asyncio.Semaphore,
    lat: Latencies,
) -> None:
    async with sem:
        ws = await session.ws_connect(url, max_msg_size=0, autoping=True)
    try:
        async for msg in ws:
            now = time.monotonic_ns()
            if msg.type is aiohttp.WSMsgType.TEXT:
                data: str = msg.data
                if MARK in data:
                    sub.scan(data, MARK, "~", now, lat)
                elif not sub.ready.is_set():
                    sub.check_join(data)
        sub.closed = f"websocket closed by server, code {ws.close_code}"
    finally:
        await ws.close()


def _sse_blocks_before_ready(sub: Subscription, block: bytes) -> None:
    for event in block.split(b"\n\n"):
        if b"event: presence" not in event:
            continue
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                sub.check_join(line[5:])


async def _sse_stream(
    session: aiohttp.ClientSession,
    url: str,
    sub: Subscription,
    sem: asyncio.Semaphore,
    lat: Latencies,
) -> None:
    async with sem:
        resp = await session.get(url, headers={"Accept": "text/event-stream"})
    try:
        if resp.status != 200:
            sub.closed = f"HTTP {resp.status}"
            return
        buf = b""
        async for chunk in resp.content.iter_any():
            now = time.monotonic_ns()
            buf += chunk
            end = buf.rfind(b"\n\n")
            if end < 0:
                continue
            block, buf = buf[:end], buf[end + 2 :]
            if not sub.ready.is_set():
                _sse_blocks_before_ready(sub, block)
            sub.scan(block, MARK_B, b"~", now, lat)
        sub.closed = "event stream ended by server"
    finally:
        resp.close()


async def _subscribe(
    session: aiohttp.ClientSession,
    job: WorkerJob,
    sub: Subscription,
    sem: asyncio.Semaphore,
    lat: Latencies,
) -> None:
    path = "ws" if job.transport == "ws" else "events"
    url = f"{job.base_url}/rooms/{job.room}/{path}?user={sub.user}"
    stream = _ws_stream if job.transport == "ws" else _sse_stream
    try:
        await stream(session, url, sub, sem, lat)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        sub.closed = f"{type(exc).__name__}: {exc}"[:200]


# -- raw-socket subscribers --------------------------------------------------
# An asyncio.Protocol per subscriber, as load generators do: no client library
# between the socket and the stamp scan, so the client's CPU per delivery is
# the parsing it cannot avoid.
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
JOIN_B = b'"event":"join"'


class RawSubscriber(asyncio.Protocol):
    """Common part: send the request, read the response head, then the body.

    ``handshake`` resolves once the head checked out (or the connection
    failed); ``done`` once the connection is gone. ``closed`` of the
    subscription is set only when the stream ended without us closing it.
    """

    expect_status = b""

    def __init__(self, sub: Subscription, lat: Latencies, request: bytes) -> None:
        self.sub = sub
        self.lat = lat
        self.request = request
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
            if len(self.head) > 65536:
                self.fail("response head too long")
            return
        head, rest = self.head[:end], self.head[end + 4 :]
        self.head = b""
        why = self.check_head(head)
        if why is not None:
            self.fail(why)
            return
        self.in_body = True
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
        status = head.split(b"\r\n", 1)[0]
        parts = status.split(b" ", 2)
        if len(parts) < 2 or parts[1] != self.expect_status:
            return "HTTP " + (parts[1] if len(parts) > 1 else status).decode(errors="replace")
        return None

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


def ws_request(path: str, host: str, key: bytes) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def ws_accept(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def ws_client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked, final client frame (control frames carry at most 125 bytes)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + mask + ws_mask(payload, mask)


def ws_mask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte key (masking and unmasking are the same)."""
    n = len(payload)
    if not n:
        return b""
    key = int.from_bytes(mask * (n // 4 + 1), "big") >> (8 * (4 - n % 4))
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


class RawWebSocket(RawSubscriber):
    """RFC 6455 client: text frames are scanned, pings answered, close recorded."""

    expect_status = b"101"

    def __init__(self, sub: Subscription, lat: Latencies, path: str, host: str) -> None:
        self.key = base64.b64encode(os.urandom(16))
        super().__init__(sub, lat, ws_request(path, host, self.key))
        self.buf = b""
        self.fragments: list[bytes] | None = None  # a fragmented text message so far

    def check_head(self, head: bytes) -> str | None:
        why = super().check_head(head)
        if why is None and ws_accept(self.key) not in head:
            why = "bad Sec-WebSocket-Accept"
        return why

    def eof_reason(self) -> str:
        return "websocket closed by server, code None"

    def body(self, data: bytes, now: int) -> None:
        if self.ended:
            return
        buf = self.buf + data if self.buf else data
        size = len(buf)
        pos = 0
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if size - start < 2:
                    break
                n = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif n == 127:
                if size - start < 8:
                    break
                n = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            if b1 & 0x80:  # servers must not mask; read it anyway
                if size - start < 4:
                    break
                mask = buf[start : start + 4]
                start += 4
            else:
                mask = b""
            end = start + n
            if end > size:
                break
            payload = buf[start:end]
            if mask:
                payload = ws_mask(payload, mask)
            pos = end
            self.frame(b0, payload, now)
            if self.ended:
                return
        self.buf = buf[pos:] if pos < size else b""

    def frame(self, b0: int, payload: bytes, now: int) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode == 0x1 or opcode == 0x0:
            if opcode == 0x1 and fin:
                self.text(payload, now)
            elif opcode == 0x1:
                self.fragments = [payload]
            elif self.fragments is not None:
                self.fragments.append(payload)
                if fin:
                    whole = b"".join(self.fragments)
                    self.fragments = None
                    self.text(whole, now)
        elif opcode == 0x9:
            if self.transport is not None and not self.closing:
                self.transport.write(ws_client_frame(0xA, payload))
        elif opcode == 0x8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            self.stream_ended(f"websocket closed by server, code {code}")
            if self.transport is not None:
                self.transport.write(ws_client_frame(0x8, payload[:2]))
                self.transport.close()
        # binary (0x2) and pong (0xA): nothing to do

    def text(self, payload: bytes, now: int) -> None:
        sub = self.sub
        if MARK_B in payload:
            sub.scan(payload, MARK_B, b"~", now, self.lat)
        elif not sub.ready.is_set():
            self.maybe_join(payload)

    def close(self) -> None:
        if self.transport is not None and not self.closing and not self.ended:
            self.transport.write(ws_client_frame(0x8, (1000).to_bytes(2, "big")))
        super().close()


class RawEventSource(RawSubscriber):
    """HTTP/1.1 chunked ``text/event-stream``: event blocks are scanned."""

    expect_status = b"200"

    def __init__(self, sub: Subscription, lat: Latencies, path: str, host: str) -> None:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\n\r\n"
        ).encode()
        super().__init__(sub, lat, request)
        self.chunked = True
        self.raw = b""  # unparsed chunked framing
        self.need = -1  # bytes of chunk data still to come; -1: a size line is next
        self.trail = 0  # bytes of the CRLF after chunk data still to come
        self.events = b""  # event-stream text not yet ending in a blank line

    def check_head(self, head: bytes) -> str | None:
        why = super().check_head(head)
        if why is None:
            self.chunked = b"\r\ntransfer-encoding: chunked" in head.lower()
        return why

    def eof_reason(self) -> str:
        return "event stream ended by server"

    def body(self, data: bytes, now: int) -> None:
        if self.ended:
            return
        if self.chunked:
            data = self.dechunk(data)
        if data:
            self.event_text(data, now)

    def dechunk(self, data: bytes) -> bytes:
        """The chunk data in ``data`` (after what was left over), in order.

        State between calls: ``need`` bytes of chunk data still to come (-1: a
        size line is next), ``trail`` bytes of the CRLF after the data.
        """
        buf = self.raw + data if self.raw else data
        size = len(buf)
        pos = 0
        need, trail = self.need, self.trail
        out: list[bytes] = []
        while pos < size:
            if trail:
                if trail == 2 and size - pos >= 2:
                    ok = buf[pos] == 13 and buf[pos + 1] == 10
                    pos, trail = pos + 2, 0
                else:
                    ok = buf[pos] == b"\r\n"[2 - trail]
                    pos, trail = pos + 1, trail - 1
                if not ok:
                    self.fail("chunk data not followed by CRLF")
                    return b""
                continue
            if need < 0:  # "<hex>[;extension]\r\n"
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if size - pos > 1024:
                        self.fail("chunk size line too long")
                        return b""
                    break
                try:
                    need = int(buf[pos:eol].split(b";", 1)[0], 16)
                except ValueError:
                    need = -2
                if need < 0:
                    self.fail(f"bad chunk size line {bytes(buf[pos:eol])[:40]!r}")
                    return b""
                pos = eol + 2
                if need == 0:  # the last chunk: the stream is over (trailers do not matter)
                    self.stream_ended("event stream ended by server")
                    if self.transport is not None:
                        self.transport.close()
                    self.raw = b""
                    return b"".join(out)
            take = min(need, size - pos)
            out.append(buf[pos : pos + take])
            pos += take
            need -= take
            if need == 0:
                need, trail = -1, 2
        self.need, self.trail = need, trail
        self.raw = buf[pos:] if pos < size else b""
        return out[0] if len(out) == 1 else b"".join(out)

    def event_text(self, data: bytes, now: int) -> None:
        buf = self.events + data if self.events else data
        end = buf.rfind(b"\n\n")
        if end < 0:
            self.events = buf
            return
        block, self.events = buf[:end], buf[end + 2 :]
        if not self.sub.ready.is_set() and JOIN_B in block:
            _sse_blocks_before_ready(self.sub, block)
        if MARK_B in block:
            self.sub.scan(block, MARK_B, b"~", now, self.lat)


async def _wait_ready(
    subs: list[Subscription], tasks: list[asyncio.Task[None]], timeout: float
) -> None:
    """Until every subscriber is live or gone, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    for sub, task in zip(subs, tasks, strict=True):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        ready = asyncio.ensure_future(sub.ready.wait())
        await asyncio.wait([ready, task], timeout=left, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()


async def _wait_drained(subs: list[Subscription], expected: int, deadline_ns: int) -> None:
    """Until every open subscriber holds ``expected`` messages, or the deadline."""
    while time.monotonic_ns() < deadline_ns:
        if all(s.received >= expected or s.closed is not None for s in subs):
            return
        await asyncio.sleep(0.02)


def _ready_report(subs: list[Subscription]) -> dict[str, Any]:
    errors = Counter(s.closed for s in subs if not s.ready.is_set() and s.closed is not None)
    return {
        "ready": sum(s.ready.is_set() for s in subs),
        "failed": len(subs) - sum(s.ready.is_set() for s in subs),
        "errors": dict(errors.most_common(5)),
    }


def _result(subs: list[Subscription], lat: Latencies) -> dict[str, Any]:
    return {
        "latencies_ns": lat.all.tobytes(),
        "msg_first_ns": lat.first.tobytes(),
        "msg_last_ns": lat.last.tobytes(),
        "subs": [s.report() for s in subs],
        "seen": [bytes(s.seen) for s in subs],
        "last_ns": max((s.last_ns for s in subs), default=0),
        "pid": os.getpid(),
    }


async def _serve_commands(conn: Connection, subs: list[Subscription], lat: Latencies) -> None:
    """``status`` -> how many are still connected; ``finish`` -> drain, then the result."""
    while True:
        command = await receive(conn)
        if command[0] == "status":
            tell(conn, ("status", sum(s.ready.is_set() and s.closed is None for s in subs)))
        elif command[0] == "finish":
            await _wait_drained(subs, command[1], command[2])
            tell(conn, ("result", _result(subs, lat)))
            return
        else:
            return


async def _subscribe_raw(
    job: WorkerJob, sub: Subscription, sem: asyncio.Semaphore, lat: Latencies
) -> None:
    """One raw-socket subscriber, from connect to the end of its stream."""
    parts = urlsplit(job.base_url)
    proto: RawSubscriber | None = None
    try:
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the raw client speaks plain http only, not {job.base_url!r}")
        kind = "ws" if job.transport == "ws" else "events"
        path = f"/rooms/{quote(job.room, safe='')}/{kind}?user={quote(sub.user, safe='')}"
        cls = RawWebSocket if job.transport == "ws" else RawEventSource
        proto = cls(sub, lat, path, parts.netloc)
        loop = asyncio.get_running_loop()
        async with sem, asyncio.timeout(job.connect_timeout):
            await loop.create_connection(lambda: proto, parts.hostname, parts.port or 80)
            await proto.handshake
        await proto.done
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if sub.closed is None:
            sub.closed = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        if proto is not None:
            proto.close()


async def _run_subscribers(
    conn: Connection,
    job: WorkerJob,
    subs: list[Subscription],
    lat: Latencies,
    subscribe: Callable[[Subscription, asyncio.Semaphore], Coroutine[Any, Any, None]],
) -> None:
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tasks = [asyncio.create_task(subscribe(s, sem)) for s in subs]
    try:
        await _wait_ready(subs, tasks, job.connect_timeout)
        tell(conn, ("ready", _ready_report(subs)))
        await _serve_commands(conn, subs, lat)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=5)


async def _worker(conn: Connection, job: WorkerJob) -> None:
    lat = Latencies(job.total)
    subs = [Subscription(u, bytearray(job.total)) for u in job.users]
    async with asyncio.timeout(job.lifetime):
        if job.client == "aiohttp":
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=None, connect=job.connect_timeout, sock_read=None)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                await _run_subscribers(
                    conn, job, subs, lat, lambda s, sem: _subscribe(session, job, s, sem, lat)
                )
        else:
            await _run_subscribers(
                conn, job, subs, lat, lambda s, sem: _subscribe_raw(job, s, sem, lat)
            )


def worker_main(conn: Connection, job: WorkerJob) -> None:
    """Entry point of a subscriber worker process."""
    run_child(_worker(conn, job))


# -- publisher ---------------------------------------------------------------
@dataclass
class PublishJob:
    base_url: str
    room: str
    via: str  # "ws" | "post"
    rate: float
    total: int
    payload_bytes: int
    confirm_timeout: float
    lifetime: float


@dataclass
class PublishState:
    accepted: bytearray
    errors: Counter[str] = field(default_factory=Counter)
    answered: int = 0  # accepted or refused
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def accept(self, seq: int) -> None:
        if 0 <= seq < len(self.accepted) and not self.accepted[seq]:
            self.accepted[seq] = 1
            self._answer()

    def refuse(self, why: str) -> None:
        self.errors[why] += 1
        self._answer()

    def _answer(self) -> None:
        self.answered += 1
        if self.answered >= len(self.accepted):
            self.settled.set()


async def _read_echoes(ws: aiohttp.ClientWebSocketResponse, state: PublishState) -> None:
    """A message is accepted when the server fans it back out to the sender."""
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            continue
        data: str = msg.data
        i = data.find(MARK)
        if i >= 0:
            state.accept(parse_stamp(data, i + len(MARK), "~")[1])
        elif data.startswith('{"type":"error"'):
            state.refuse(f"ws error {json.loads(data).get('code')}")
    state.errors[f"publisher websocket closed, code {ws.close_code}"] += 1
    state.settled.set()


async def _post_one(
    session: aiohttp.ClientSession, url: str, seq: int, job: PublishJob, state: PublishState
) -> None:
    body = {"text": stamp_text(seq, job.payload_bytes), "user": "pub", "client_id": str(seq)}
    try:
        async with session.post(url, json=body) as resp:
            await resp.read()
            if resp.status == 201:
                state.accept(seq)
            else:
                state.refuse(f"HTTP {resp.status}")
    except aiohttp.ClientError as exc:
        state.refuse(type(exc).__name__)


async def _paced(job: PublishJob, send: Any) -> tuple[int, int]:
    """Call ``send(seq)`` at ``job.rate`` per second; return the window in ns."""
    start = time.monotonic_ns()
    for seq in range(job.total):
        delay = (start + seq * 1e9 / job.rate - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        await send(seq)
    return start, time.monotonic_ns()


async def _publish_ws(
    conn: Connection, session: aiohttp.ClientSession, job: PublishJob, state: PublishState
) -> tuple[int, int]:
    url = f"{job.base_url}/rooms/{job.room}/ws?user=pub"
    async with session.ws_connect(url, max_msg_size=0) as ws:
        reader = asyncio.create_task(_read_echoes(ws, state))
        tell(conn, ("ready", None))
        await receive(conn)

        async def send(seq: int) -> None:
            text = stamp_text(seq, job.payload_bytes)
            await ws.send_str(json.dumps({"type": "send", "text": text, "client_id": str(seq)}))

        window = await _paced(job, send)
        tell(conn, ("sent", window))
        await _await_settled(job, state)
        reader.cancel()
        return window


async def _publish_post(
    conn: Connection, session: aiohttp.ClientSession, job: PublishJob, state: PublishState
) -> tuple[int, int]:
    url = f"{job.base_url}/rooms/{job.room}/messages"
    in_flight = asyncio.Semaphore(MAX_POSTS_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()

    async def one(seq: int) -> None:
        async with in_flight:
            await _post_one(session, url, seq, job, state)

    async def send(seq: int) -> None:
        await in_flight.acquire()  # wait for room before stamping, then hand it over
        in_flight.release()
        task = asyncio.create_task(one(seq))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    tell(conn, ("ready", None))
    await receive(conn)
    window = await _paced(job, send)
    tell(conn, ("sent", window))
    if tasks:
        await asyncio.wait(tasks, timeout=job.confirm_timeout)
    return window


async def _await_settled(job: PublishJob, state: PublishState) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.settled.wait(), job.confirm_timeout)


async def _publisher(conn: Connection, job: PublishJob) -> None:
    state = PublishState(bytearray(job.total))
    connector = aiohttp.TCPConnector(limit=MAX_POSTS_IN_FLIGHT)
    async with asyncio.timeout(job.lifetime), aiohttp.ClientSession(connector=connector) as session:
        publish = _publish_ws if job.via == "ws" else _publish_post
        start, end = await publish(conn, session, job, state)
    tell(
        conn,
        (
            "result",
            {
                "accepted": bytes(state.accepted),
                "errors": dict(state.errors),
                "window_ns": (start, end),
                "pid": os.getpid(),
            },
        ),
    )


def publisher_main(conn: Connection, job: PublishJob) -> None:
    """Entry point of the publisher process."""
    run_child(_publisher(conn, job))
