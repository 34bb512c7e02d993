"""The SSE link: ``GET /rooms/{room}/events`` with ``Last-Event-ID``.

:class:`SseParser` follows the HTML specification's event-stream rules
(lines end in CR, LF or CRLF; ``:`` starts a comment; a blank line
dispatches; ``retry:`` takes digits only), fed with whatever chunks arrive.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from dataclasses import dataclass

import aiohttp

from .link import Dial, Ending, Handler, Reason, refusal


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None


class SseParser:
    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.retry_ms: int | None = None  # the last retry: seen

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += self._decoder.decode(chunk)
        out: list[SseEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return out
            end, skip = cut
            line, self._buffer = self._buffer[:end], self._buffer[end + skip :]
            event = self._line(line)
            if event is not None:
                out.append(event)

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        return SseEvent(event, "\n".join(data), self._id)


def _line_end(buffer: str) -> tuple[int, int] | None:
    """Where the first line ends and how long its end is; a lone CR at the
    very end waits for the next chunk (it may be half of a CRLF)."""
    for i, ch in enumerate(buffer):
        if ch == "\n":
            return i, 1
        if ch == "\r":
            if i + 1 == len(buffer):
                return None
            return i, 2 if buffer[i + 1] == "\n" else 1
    return None


async def run_sse(dial: Dial, handler: Handler) -> Ending:
    headers = {"Accept": "text/event-stream", **dial.headers()}
    if dial.since is not None:
        headers["Last-Event-ID"] = dial.since
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=dial.idle_timeout)
    # A server that accepts the connection but never answers counts as down.
    async with asyncio.timeout(dial.idle_timeout):
        resp = await dial.session.get(dial.url("events"), headers=headers, timeout=timeout)
    async with resp:
        if resp.status != 200:
            raise await refusal(resp)
        handler.opened(None)
        parser = SseParser()
        retry = parser.retry_ms
        while True:
            # The server sends a comment ping every --heartbeat seconds.
            async with asyncio.timeout(dial.idle_timeout):
                chunk = await resp.content.readany()
            if not chunk:
                return Ending(Reason.DROPPED, "the server ended the stream")
            events = parser.feed(chunk)
            if parser.retry_ms != retry and parser.retry_ms is not None:
                retry = parser.retry_ms
                handler.retry_hint(retry / 1000)
            for event in events:
                ending = await _deliver(event, handler)
                if ending is not None:
                    return ending


async def _deliver(event: SseEvent, handler: Handler) -> Ending | None:
    try:
        data = json.loads(event.data)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    data.setdefault("type", event.event)
    return await handler.received(data)
