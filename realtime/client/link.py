"""What the three transports share: how a connection is dialled, how it
hands events to its subscription, and how it ended.

A *link* is one connection attempt (one WebSocket, one SSE stream, or a run
of long-polls). ``run_ws``/``run_sse``/``run_poll`` return an :class:`Ending`
when the server ends it (or a deliberate event does), raise :class:`Refused`
for an HTTP error answer, and let network errors propagate; the
subscription's reconnect loop decides what happens next.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from yarl import URL

from .errors import Refused

Sender = Callable[[str], Awaitable[None]]

WS_SLOW = 1013  # dropped as a slow consumer: come back at once
WS_TOO_BIG = 1009  # a frame we sent was over the server's limit
WS_TOKEN_EXPIRED = 4003
WS_RECONNECT = 4001
DELIBERATE = range(4000, 4100)  # the server API's disconnects


class State(enum.Enum):
    """Where a subscription is: dialling, connected, waiting to retry, or done."""

    CONNECTING = "connecting"
    LIVE = "live"
    BACKOFF = "backoff"
    CLOSED = "closed"


class Reason(enum.Enum):
    DROPPED = "dropped"  # network error, stream ended, 5xx, 429: back off, then resume
    SLOW = "slow"  # dropped as a slow consumer: resume at once
    RECONNECT = "reconnect"  # a deliberate disconnect that asks us to come back
    STOP = "stop"  # a deliberate disconnect: do not come back
    TOKEN_EXPIRED = "token_expired"  # come back with a fresh token


@dataclass(frozen=True, slots=True)
class Ending:
    reason: Reason
    detail: str
    code: int | None = None
    retry_after: float | None = None


def ending_for_close(code: int | None, reason: str) -> Ending:
    """How a WebSocket close code (or an SSE ``disconnect`` code) ends a link."""
    detail = f"closed {code}" + (f": {reason}" if reason else "")
    if code == WS_SLOW:
        return Ending(Reason.SLOW, detail, code)
    if code == WS_TOKEN_EXPIRED:
        return Ending(Reason.TOKEN_EXPIRED, detail, code)
    if code == WS_RECONNECT:
        return Ending(Reason.RECONNECT, detail, code)
    if code is not None and code in DELIBERATE:
        return Ending(Reason.STOP, reason, code)
    return Ending(Reason.DROPPED, detail, code)


def ending_for_disconnect(data: dict[str, Any]) -> Ending:
    """A ``disconnect`` event (SSE, long-polling): ``{"code", "reason", "reconnect"}``."""
    code = data.get("code")
    ending = ending_for_close(code if isinstance(code, int) else None, str(data.get("reason", "")))
    reconnect = data.get("reconnect")
    if reconnect is True and ending.reason is Reason.STOP:
        return Ending(Reason.RECONNECT, ending.detail, ending.code)
    if reconnect is False and ending.reason in (Reason.DROPPED, Reason.RECONNECT):
        return Ending(Reason.STOP, ending.detail, ending.code)
    return ending


def ending_for_refusal(exc: Refused) -> Ending | None:
    """A refused connection worth retrying, or ``None`` when it is final."""
    if exc.code == "token_expired":
        return Ending(Reason.TOKEN_EXPIRED, str(exc), exc.status)
    if exc.status is not None and (exc.status in (408, 429) or exc.status >= 500):
        return Ending(Reason.DROPPED, str(exc), exc.status, exc.retry_after)
    return None


class Handler(Protocol):
    """The subscription, as its links see it."""

    def opened(self, sender: Sender | None) -> None:
        """The link is up; ``sender`` writes a text frame (WebSocket only)."""

    async def received(self, data: dict[str, Any]) -> Ending | None:
        """One server event; an :class:`Ending` when it ends the link."""

    def retry_hint(self, seconds: float) -> None:
        """The server's SSE ``retry:``."""


@dataclass(frozen=True, slots=True)
class Dial:
    """Everything one connection attempt needs."""

    session: aiohttp.ClientSession
    base: URL
    room: str
    user: str | None
    token: str | None
    since: str | None
    idle_timeout: float
    poll_timeout: float

    def url(self, tail: str, **query: str | None) -> URL:
        params = {"user": self.user, **query}
        return (self.base / "rooms" / self.room / tail).with_query(
            {k: v for k, v in params.items() if v is not None}
        )

    def headers(self) -> dict[str, str]:
        return auth_headers(self.token)


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    raw = resp.headers.get("Retry-After", "")
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


async def refusal(resp: aiohttp.ClientResponse) -> Refused:
    """The server's JSON error answer as an exception (any body will do)."""
    text = await resp.text(errors="replace")
    code, detail = f"http_{resp.status}", text[:200] or resp.reason or ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body:
        code, detail = str(body["code"]), str(body.get("detail", ""))
    return Refused(code, detail, resp.status, _retry_after(resp))
