"""Long-polling: ``GET …/poll?since=<next>&timeout=25`` in a loop, and its raw-socket client.

A subscriber first asks with ``since=0&timeout=0`` (the room is fresh, so
everything after id 0 is the whole run): the answer comes at once, and from
then on the subscriber is live, since every later message is either held
for its next request or stored and returned by it. Each answer's ``next``
is the ``since`` of the next request. The receive time is taken when an
answer's last bytes arrive. (The aiohttp client is in
:mod:`benchmarks.aiohttp_subscribers`.)
"""

from __future__ import annotations

import asyncio

from benchmarks import rawclient
from benchmarks.dialect import Endpoint
from benchmarks.raw_subscribers import RawSubscriber, connect
from benchmarks.subscription import MARK_B, Latencies, Subscription

HOLD = 25  # seconds a request may be held, as a browser client would ask
NEXT_B = b'"next":'


def answer_next(body: bytes) -> str | None:
    """The ``next`` of a poll answer: the last field, a JSON string or null."""
    value = body[body.rfind(NEXT_B) + len(NEXT_B) :].strip().rstrip(b"}").strip()
    return value.strip(b'"').decode() if value.startswith(b'"') else None


def poll_path(at: Endpoint, user: str, since: str | None, hold: float) -> str:
    since_arg = f"&since={since}" if since is not None else ""
    return f"{at.path(user)}{since_arg}&timeout={hold:g}"


class RawPoll(RawSubscriber):
    """Keep-alive ``GET`` requests, one at a time, each answer read by its Content-Length."""

    expect_status = b"200"

    def __init__(self, sub: Subscription, lat: Latencies, at: Endpoint, host: str) -> None:
        self.at = at
        self.host = host
        first = rawclient.get_request(poll_path(at, sub.user, "0", 0), host)
        super().__init__(sub, lat, first)
        self.length = 0
        self.answer = b""

    def request_for(self, since: str | None, hold: float) -> bytes:
        return rawclient.get_request(poll_path(self.at, self.sub.user, since, hold), self.host)

    def check_head(self, head: bytes) -> str | None:
        why = super().check_head(head)
        length = rawclient.content_length(head)
        if why is None and length is None:
            why = "poll answer without Content-Length"
        self.length = length or 0
        return why

    def head_ok(self) -> None:
        self.answer = b""

    def eof_reason(self) -> str:
        return "poll connection closed by server"

    def body(self, data: bytes, now: int) -> None:
        if self.ended:
            return
        self.answer += data
        if len(self.answer) < self.length:
            return
        body, rest = self.answer[: self.length], self.answer[self.length :]
        self.in_body = False
        if MARK_B in body:
            self.sub.scan(body, MARK_B, b"~", now, self.lat)
        self.sub.ready.set()
        if self.transport is not None and not self.closing:
            self.transport.write(self.request_for(answer_next(body), HOLD))
        if rest:  # the start of the next answer
            self.data_received(rest)


async def subscribe_raw_poll(
    at: Endpoint, sub: Subscription, lat: Latencies, connect_timeout: float, sem: asyncio.Semaphore
) -> None:
    """One raw long-polling subscriber, until its connection ends."""
    await connect(lambda host: RawPoll(sub, lat, at, host), at.base_url, connect_timeout, sem)
