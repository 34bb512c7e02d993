"""``Client``: one server, its rooms, sends and publishes.

async with Client("http://127.0.0.1:8080", user="ana") as client:
    async with client.subscribe("lobby", transport="sse") as sub:
        await client.send("lobby", "hi")
        async for event in sub:
            ...
"""

from __future__ import annotations

import weakref
from types import TracebackType
from typing import overload

import aiohttp
from yarl import URL

from . import api, sending
from .api import Published
from .context import Auth, Context, Options, TokenProvider
from .errors import ClientError, Refused
from .events import Message, id_key
from .sending import History
from .subscription import Subscription


class Client:
    """A client of one ``realtime`` server (``url`` is its base, e.g.
    ``http://127.0.0.1:8080``). ``user`` names us in public rooms (a token's
    user wins in private ones); ``token`` is sent as ``Authorization:
    Bearer``; ``token_provider`` (sync or async, no arguments) gives a fresh
    one when the server says the token expired; ``api_key`` enables
    :meth:`publish`. ``session`` lets the client share an
    ``aiohttp.ClientSession`` (it is not closed with the client)."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        token: str | None = None,
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        options: Options | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = URL(url)
        if self.url.scheme not in ("http", "https") or not self.url.host:
            raise ValueError(f"the server URL must be http(s)://host[:port], not {url!r}")
        self.user = user
        self.api_key = api_key
        self.options = options or Options()
        self._auth = Auth(token, token_provider)
        self._own_session = session is None
        self._session = session
        self._ctx: Context | None = None
        self._subs: weakref.WeakSet[Subscription] = weakref.WeakSet()

    @property
    def token(self) -> str | None:
        """The token in use (a fresh one after a refresh)."""
        return self._auth.token

    async def __aenter__(self) -> Client:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0)
            )
        self._ctx = Context(
            session=self._session,
            base=self.url,
            user=self.user,
            auth=self._auth,
            api_key=self.api_key,
            options=self.options,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for sub in list(self._subs):
            await sub.aclose()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
        self._ctx = None

    @property
    def ctx(self) -> Context:
        if self._ctx is None:
            raise ClientError("use the client as `async with Client(...) as client:`")
        return self._ctx

    def subscribe(self, room: str, transport: str = "ws", since: str | None = None) -> Subscription:
        """A subscription to ``room``, to use as ``async with``. ``since``
        resumes after that message id (``None``: the room's recent messages
        first, then live ones)."""
        if since is not None:
            id_key(since)  # ValueError now rather than a 400 later
        sub = Subscription(self.ctx, room, transport, since)
        self._subs.add(sub)
        return sub

    async def send(self, room: str, text: str, *, client_id: str | None = None) -> Message:
        """Send ``text`` to ``room`` as our user and return it as stored (with
        its id): over the room's open WebSocket subscription if there is one,
        else by POST. Raises :class:`Refused` when the server says no."""
        return await sending.send(
            self.ctx, list(self._subs), room, text, client_id or sending.new_client_id()
        )

    async def history(
        self, room: str, *, since: str | None = None, limit: int | None = None
    ) -> History:
        """Stored messages after ``since`` (oldest first), or the newest ones."""
        return await sending.history(self.ctx, room, since, limit)

    @overload
    async def publish(
        self,
        rooms: str,
        text: str,
        *,
        user: str | None = None,
        client_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> str: ...

    @overload
    async def publish(
        self,
        rooms: list[str] | tuple[str, ...],
        text: str,
        *,
        user: str | None = None,
        client_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[Published]: ...

    async def publish(
        self,
        rooms: str | list[str] | tuple[str, ...],
        text: str,
        *,
        user: str | None = None,
        client_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> str | list[Published]:
        """Publish through the server API (needs ``api_key``). One room: its
        new id (:class:`Refused` if that room refused). Several rooms: one
        :class:`Published` per room, refusals included. The same
        ``idempotency_key`` again returns the first ids and stores nothing."""
        results = await api.publish(
            self.ctx,
            rooms,
            text,
            user=user,
            client_id=client_id,
            idempotency_key=idempotency_key,
        )
        if not isinstance(rooms, str):
            return results
        if len(results) != 1:
            raise Refused("bad_answer", f"expected one result, got {len(results)}")
        first = results[0]
        if first.id is None:
            raise Refused(first.code or "error", first.detail or "")
        return first.id
