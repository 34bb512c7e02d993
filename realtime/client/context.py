"""What a client's subscriptions and sends share: the HTTP session, the
server's address, who we are, the token, and the tunables."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from .backoff import Backoff
from .errors import TokenExpired
from .link import Dial

TokenProvider = Callable[[], Awaitable[str] | str]


@dataclass(frozen=True, slots=True)
class Options:
    """Tunables of a :class:`~realtime.client.Client`.

    ``give_up_after``: seconds without a connection before a subscription
    raises :class:`~realtime.client.ClientGaveUp` (``None``: never).
    ``idle_timeout``: seconds of silence after which an SSE stream counts as
    dead (keep it above the server's ``--heartbeat``, default 15), and the
    WebSocket ping interval times two. ``poll_timeout``: how long the server
    may hold one long-poll. ``send_timeout``: longest wait for a send's
    answer. ``max_queue``: events held for a consumer that is not reading
    before the client stops reading the socket (the server then drops us as
    a slow consumer and we resume by id).
    """

    backoff: Backoff = field(default_factory=Backoff)
    give_up_after: float | None = 300.0
    idle_timeout: float = 40.0
    poll_timeout: float = 25.0
    send_timeout: float = 30.0
    max_queue: int = 10_000


class Auth:
    """The current token, and the callback that gives a fresh one."""

    def __init__(self, token: str | None, provider: TokenProvider | None) -> None:
        self.token = token
        self.provider = provider
        self._lock = asyncio.Lock()

    async def refresh(self, stale: str | None) -> str:
        """A token other than ``stale``: several subscriptions whose token
        expired together call the provider once."""
        if self.provider is None:
            raise TokenExpired("the token expired and no token_provider was given")
        async with self._lock:
            if self.token != stale and self.token is not None:
                return self.token
            try:
                fresh = self.provider()
                if inspect.isawaitable(fresh):
                    fresh = await fresh
            except Exception as exc:
                raise TokenExpired(f"the token expired and token_provider failed: {exc}") from exc
            if not isinstance(fresh, str) or not fresh:
                raise TokenExpired("the token expired and token_provider gave no token")
            self.token = fresh
            return fresh


@dataclass(slots=True)
class Context:
    session: aiohttp.ClientSession
    base: URL
    user: str | None
    auth: Auth
    api_key: str | None
    options: Options

    def dial(self, room: str, since: str | None) -> Dial:
        return Dial(
            session=self.session,
            base=self.base,
            room=room,
            user=self.user,
            token=self.auth.token,
            since=since,
            idle_timeout=self.options.idle_timeout,
            poll_timeout=self.options.poll_timeout,
        )
