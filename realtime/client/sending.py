"""Sending a message: over the room's open WebSocket, else by POST.

Over the WebSocket the answer is the message itself coming back with our
``client_id`` (or an ``error`` event). If the socket drops before that, the
message may or may not be stored: the room's history after the last id we
had tells, and only when it is not there is the message sent again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from .context import Context
from .errors import Refused
from .events import Message, parse_message
from .link import auth_headers, refusal
from .subscription import LinkLost, Subscription

_session = secrets.token_hex(3)
_counter = itertools.count(1)
PAGE = 100
T = TypeVar("T")


def new_client_id() -> str:
    """Unique to this process: ``py-<random>-<n>`` (the server allows 64 chars)."""
    return f"py-{_session}-{next(_counter)}"


@dataclass(frozen=True, slots=True)
class History:
    room: str
    messages: tuple[Message, ...]
    gap: bool


async def with_fresh_token(ctx: Context, call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, again once with a fresh token if the server says ours
    expired (nothing was done with the expired one)."""
    token = ctx.auth.token
    try:
        return await call()
    except Refused as exc:
        if exc.code != "token_expired" or ctx.auth.provider is None:
            raise
    await ctx.auth.refresh(token)
    return await call()


async def post_message(ctx: Context, room: str, text: str, client_id: str) -> Message:
    return await with_fresh_token(ctx, lambda: _post(ctx, room, text, client_id))


async def _post(ctx: Context, room: str, text: str, client_id: str) -> Message:
    body: dict[str, Any] = {"text": text, "client_id": client_id}
    if ctx.user is not None:
        body["user"] = ctx.user
    url = ctx.base / "rooms" / room / "messages"
    timeout = aiohttp.ClientTimeout(total=ctx.options.send_timeout)
    async with ctx.session.post(
        url, json=body, headers=auth_headers(ctx.auth.token), timeout=timeout
    ) as resp:
        if resp.status != 201:
            raise await refusal(resp)
        return parse_message(await resp.json())


async def history(ctx: Context, room: str, since: str | None, limit: int | None) -> History:
    return await with_fresh_token(ctx, lambda: _history(ctx, room, since, limit))


async def _history(ctx: Context, room: str, since: str | None, limit: int | None) -> History:
    query = {k: v for k, v in {"since": since, "limit": limit}.items() if v is not None}
    url = (ctx.base / "rooms" / room / "messages").with_query(query)
    timeout = aiohttp.ClientTimeout(total=ctx.options.send_timeout)
    async with ctx.session.get(url, headers=auth_headers(ctx.auth.token), timeout=timeout) as resp:
        if resp.status != 200:
            raise await refusal(resp)
        data = await resp.json()
    return History(
        room=room,
        messages=tuple(parse_message(m) for m in data["messages"]),
        gap=bool(data.get("gap")),
    )


async def find_sent(ctx: Context, room: str, client_id: str, since: str | None) -> Message | None:
    """The stored message carrying ``client_id`` after ``since``, if any.
    Waits for the server to answer (it may be restarting) up to the send
    timeout."""
    cursor, limit = since or "0", PAGE
    async with asyncio.timeout(ctx.options.send_timeout):
        while True:
            try:
                page = await history(ctx, room, cursor, limit)
            except Refused as exc:
                if exc.code == "bad_limit" and limit > 1:
                    limit = 1  # a server keeping fewer than PAGE messages
                    continue
                if exc.status is not None and exc.status < 500:
                    raise
                await asyncio.sleep(0.25)
                continue
            except (aiohttp.ClientConnectionError, TimeoutError):
                await asyncio.sleep(0.25)
                continue
            for msg in page.messages:
                if msg.client_id == client_id:
                    return msg
            if len(page.messages) < limit:
                return None
            cursor = page.messages[-1].id


def _open_socket(subs: Iterable[Subscription], room: str) -> Subscription | None:
    for sub in subs:
        if sub.room == room and sub.transport == "ws" and sub.can_send:
            return sub
    return None


async def send(
    ctx: Context, subs: Iterable[Subscription], room: str, text: str, client_id: str
) -> Message:
    sub = _open_socket(subs, room)
    if sub is None:
        return await post_message(ctx, room, text, client_id)
    since = sub.resume_from
    frame = json.dumps({"type": "send", "text": text, "client_id": client_id}, ensure_ascii=False)
    try:
        return await sub.send_frame(frame, client_id)
    except LinkLost:
        pass
    found = await find_sent(ctx, room, client_id, since)
    if found is not None:
        return found
    return await post_message(ctx, room, text, client_id)
