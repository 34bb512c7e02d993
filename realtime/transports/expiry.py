"""A connection's token keeps counting after connect.

A connection opened with a token is closed with ``CloseReason.TOKEN_EXPIRED``
at the token's ``exp`` (one timer per connection, nothing polled). A
WebSocket may send ``{"type":"refresh","token":…}`` first: a valid token for
the same user, the same or wider rooms and a later ``exp`` moves the timer;
anything else is refused and the old expiry stays. SSE clients reconnect
with the new token and resume by ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import time

from ..core.room import CloseReason, Subscriber
from ..policy.tokens import Gate, Grant, TokenError


class Expiry:
    def __init__(self, grant: Grant | None) -> None:
        self.grant = grant
        self._timer: asyncio.TimerHandle | None = None
        self._sub: Subscriber | None = None

    def start(self, sub: Subscriber) -> None:
        """Arm the timer for ``sub``, if it came with a token."""
        self._sub = sub
        if self.grant is not None:
            self._arm(self.grant.exp)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, exp: float) -> None:
        self.stop()
        delay = max(0.0, exp - time.time())
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._sub is not None:
            self._sub.close(CloseReason.TOKEN_EXPIRED)

    def refresh(self, gate: Gate, room: str, token: object) -> Grant:
        """Take a new token or raise ``TokenError`` (the old expiry stays)."""
        if self.grant is None:
            raise TokenError(400, "refresh_refused", "this connection was opened without a token")
        if not isinstance(token, str) or not token:
            raise TokenError(400, "bad_message", "'token' must be a string")
        grant = gate.refresh(self.grant, room, token)
        self.grant = grant
        if self._sub is not None:
            self._arm(grant.exp)
        return grant
