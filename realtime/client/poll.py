"""The long-polling link: ``GET /rooms/{room}/poll?since=&timeout=``.

Each answer is ``{"room", "events": [...], "next"}``: the events exactly as
the other transports carry them, and the id to ask from next time. The first
request of a link asks for an answer at once; the link is up from then until
a request fails.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from .link import Dial, Ending, Handler, refusal


async def run_poll(dial: Dial, handler: Handler) -> Ending:
    cursor = dial.since
    opened = False
    while True:
        # The first request answers at once: the link is up when it does.
        # The server holds the others up to poll_timeout; each may take
        # idle_timeout more.
        hold = dial.poll_timeout if opened else 0.0
        timeout = aiohttp.ClientTimeout(
            total=hold + dial.idle_timeout, sock_connect=dial.idle_timeout
        )
        url = dial.url("poll", since=cursor, timeout=f"{hold:g}")
        async with dial.session.get(url, headers=dial.headers(), timeout=timeout) as resp:
            if resp.status != 200:
                raise await refusal(resp)
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError as exc:
                raise aiohttp.ClientPayloadError(f"the poll answer is not JSON: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise aiohttp.ClientPayloadError(f"not a poll answer: {str(body)[:100]}")
        if not opened:
            handler.opened(None)
            opened = True
        for data in body["events"]:
            if isinstance(data, dict):
                ending = await handler.received(data)
                if ending is not None:
                    return ending
        # null: nothing is held (an empty room, or after a gap), so from the
        # start of whatever comes next.
        nxt = body.get("next")
        cursor = "0" if nxt is None else str(nxt)
