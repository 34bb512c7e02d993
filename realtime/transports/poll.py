"""HTTP long-polling: ``GET /rooms/{room}/poll?since=&timeout=``.

The third transport, for networks whose proxies break both WebSocket and
streaming responses. Each request joins the room for its own duration,
without being listed in presence: it answers at once with what is stored
after ``since`` (or the last ``--replay`` messages without it), and
otherwise holds up to ``timeout`` seconds for the next event. The answer is
``{"room", "events", "next"}``; the client passes ``next`` as ``since`` on
its next request, so resume and gap notices work as on the other transports.
Sends go by ``POST /rooms/{room}/messages``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from aiohttp import web

from ..core.ports import BrokerUnavailable
from ..core.protocol import Event, dumps
from ..core.room import CloseReason, Subscriber
from .endings import final_event
from .errors import json_error, unavailable
from .guard import GUARD
from .session import session

NAME = "poll"
DEFAULT_TIMEOUT = 25.0
MAX_TIMEOUT = 60.0
MESSAGE_START = b'{"type":"message"'


class PollWire:
    """One event's JSON per line (JSON never contains a raw newline)."""

    def encode(self, event: Event) -> bytes:
        return event.json.encode() + b"\n"


WIRE = PollWire()


class PollSink:
    """Collects what the room sends until the request answers."""

    wire = WIRE

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.ready = asyncio.Event()
        self.refused: BrokerUnavailable | None = None
        self.writer = self
        self.kernel_buffer = 0
        self.descriptor = -1  # the answer is one body, written by aiohttp

    def write(self, data: bytes) -> None:
        self.buffer += data
        self.ready.set()

    def get_write_buffer_size(self) -> int:
        return 0  # the answer is one body: nothing waits on a socket

    def is_closing(self) -> bool:
        return False

    def watch_unsent(self, on_change: Callable[[bool], None]) -> bool:
        return False  # no descriptor: the room never asks

    def release(self) -> None:
        pass

    def close(self, reason: CloseReason, detail: str = "") -> None:
        final = final_event(reason, detail)
        if final is not None:
            self.write(final.encoded(WIRE))
        self.ready.set()

    async def refuse(self, exc: BrokerUnavailable) -> None:
        self.refused = exc

    def body(self, room: str, since: str | None) -> bytes:
        lines = [line for line in bytes(self.buffer).split(b"\n") if line]
        events = b",".join(lines)
        nxt = since
        for line in reversed(lines):
            if line.startswith(MESSAGE_START):
                nxt = str(json.loads(line)["id"])
                break
            if line.startswith(b'{"type":"gap"'):
                nxt = None  # nothing held after the gap: start again from the newest
                break
        return b'{"room":%b,"events":[%b],"next":%b}' % (
            dumps(room).encode(),
            events,
            dumps(nxt).encode(),
        )


def parse_timeout(raw: str | None) -> float:
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_TIMEOUT:  # also refuses nan
        raise json_error(400, "bad_timeout", f"timeout must be 0-{MAX_TIMEOUT:.0f} seconds")
    return value


async def room_poll(request: web.Request) -> web.Response:
    """Answer with the events after ``since``, waiting up to ``timeout`` for one."""
    timeout = parse_timeout(request.query.get("timeout"))
    target = request.app[GUARD].admit(request, request.query.get("since"))
    sink = PollSink()

    async def serve(sub: Subscriber) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await sink.ready.wait()

    async with session(request, target, NAME, level=logging.DEBUG) as s:
        await s.run(sink, serve, presence=False)
    if sink.refused is not None:
        raise unavailable(sink.refused, "history unavailable")
    return web.Response(
        body=sink.body(target.room, target.since),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
