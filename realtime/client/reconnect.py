"""The reconnect loop of one subscription.

Dial a link, let it run, and when it ends decide: back off and resume
(network errors, the stream ended, 5xx, 429), resume at once (dropped as a
slow consumer, WebSocket 1013 or an SSE stream cut while messages flowed),
resume after a short jitter (a deliberate disconnect with code 4001), fetch
a fresh token and resume (token expired), or stop for good (a deliberate
disconnect 4000-4099, an HTTP answer that would not change). Gives up with
:class:`ClientGaveUp` after ``give_up_after`` seconds without a connection.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import aiohttp

from .backoff import Retrier
from .errors import ClientGaveUp, Disconnected, Refused, TokenExpired
from .link import Dial, Ending, Handler, Reason, State, ending_for_refusal
from .poll import run_poll
from .sse import run_sse
from .ws import run_ws

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .subscription import Subscription

    LinkRunner = Callable[[Dial, Handler], Awaitable[Ending]]

LINKS: dict[str, LinkRunner] = {"ws": run_ws, "sse": run_sse, "poll": run_poll}
NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


class Reconnector:
    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.ctx = sub.ctx
        self.link = LINKS[sub.transport]
        self.retrier = Retrier(self.ctx.options.backoff)
        self.expired_in_a_row = 0
        self.last_error = "no attempt yet"

    async def run(self) -> None:
        """Keep a link up until a final ending, which raises a ClientError."""
        give_up = self.ctx.options.give_up_after
        last_up = time.monotonic()
        while True:
            self.sub.state = State.CONNECTING
            token = self.ctx.auth.token
            ending = await self._attempt(self.ctx.dial(self.sub.room, self.sub.resume_from))
            opened, delivered = self.sub._link_closed(ending)
            now = time.monotonic()
            if opened is not None:
                last_up = now
                self.retrier.connection_lasted(now - opened)
                self.expired_in_a_row = 0
            self.last_error = ending.detail
            delay = await self._delay(ending, token, delivered)
            if delay == 0.0:
                continue
            if give_up is not None:
                left = last_up + give_up - now
                if left <= 0:
                    raise ClientGaveUp(give_up, self.last_error)
                delay = min(delay, left)
            self.sub.state = State.BACKOFF
            await asyncio.sleep(delay)

    async def _attempt(self, dial: Dial) -> Ending:
        try:
            return await self.link(dial, self.sub)
        except Refused as exc:
            ending = ending_for_refusal(exc)
            if ending is None:
                raise
            return ending
        except NETWORK_ERRORS as exc:
            return Ending(Reason.DROPPED, describe(exc))

    async def _delay(self, ending: Ending, token: str | None, delivered: int) -> float:
        """Seconds to wait before the next attempt (raises when there is none)."""
        reason = ending.reason
        if reason is Reason.STOP:
            raise Disconnected(ending.code or 4000, ending.detail)
        if reason is Reason.TOKEN_EXPIRED:
            self.expired_in_a_row += 1
            if self.expired_in_a_row > 2:  # fresh tokens keep being refused as expired
                raise TokenExpired(f"the server keeps refusing fresh tokens: {ending.detail}")
            await self.ctx.auth.refresh(token)
            return 0.0
        if reason is Reason.SLOW and delivered > 0:
            return 0.0  # we fell behind while messages flowed: catch up at once
        if reason is Reason.RECONNECT:
            self.retrier.attempt = 0
        self.retrier.floor = self.sub.retry or 0.0
        delay = self.retrier.next_delay()
        if ending.retry_after is not None:
            delay = max(delay, ending.retry_after)
        return delay
