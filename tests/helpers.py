"""Small clients used by the tests: an SSE event reader and WebSocket helpers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks import rawclient
from benchmarks.rawclient import EventParser


async def until(condition: Callable[[], bool]) -> None:
    """Wait up to 5 s for ``condition()``."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def post(client: Any, room: str, text: str, user: str = "poster") -> dict[str, Any]:
    resp = await client.post(f"/rooms/{room}/messages", json={"text": text, "user": user})
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


@dataclass
class SseEvent:
    event: str
    data: dict[str, Any]
    id: str | None


class SseReader:
    """Parses a ``text/event-stream`` response into events, as a browser would."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.parser = EventParser()

    @property
    def retry(self) -> int | None:
        return self.parser.retry

    @property
    def last_id(self) -> str | None:
        return self.parser.last_id

    async def next(self, timeout: float = 5.0) -> SseEvent:
        async with asyncio.timeout(timeout):
            return await self._next()

    async def _next(self) -> SseEvent:
        while True:
            raw = await self.resp.content.readline()
            if raw == b"":
                raise EOFError("event stream ended")
            ev = self.parser.line(raw.decode())
            if ev is not None:
                return SseEvent(ev.event, json.loads(ev.data), ev.id)

    async def until(self, kind: str, timeout: float = 5.0) -> SseEvent:
        async with asyncio.timeout(timeout):
            while True:
                ev = await self._next()
                if ev.data.get("type") == kind:
                    return ev

    async def messages(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        out = []
        async with asyncio.timeout(timeout):
            while len(out) < n:
                ev = await self._next()
                if ev.data["type"] == "message":
                    out.append(ev.data)
        return out

    async def ended(self, timeout: float = 5.0) -> bool:
        """True once the server ends the stream."""
        try:
            async with asyncio.timeout(timeout):
                while await self.resp.content.readline():
                    pass
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            return True
        return True


async def ws_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg}"
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def ws_until(
    ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 5.0
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            data = await ws_json(ws, timeout)
            if data["type"] == kind:
                return data


async def ws_messages(
    ws: aiohttp.ClientWebSocketResponse, n: int, timeout: float = 5.0
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            data = await ws_json(ws, timeout)
            if data["type"] == "message":
                out.append(data)
    return out


# -- raw WebSocket: what no well-behaved client library would send ----------


@dataclass
class RawSocket:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    headers: dict[str, str]

    async def read_frame(self, timeout: float = 5.0) -> rawclient.Frame:
        return await asyncio.wait_for(rawclient.read_frame(self.reader), timeout)

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Read frames up to the server's close frame; return its code."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await rawclient.read_frame(self.reader)
                if frame.opcode == rawclient.CLOSE:
                    return rawclient.close_code(frame.payload)

    def close(self) -> None:
        self.writer.close()


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = head.decode("latin-1").strip().split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


async def raw_ws(client: Any, path: str, *, version: str = "13") -> RawSocket:
    """Open a WebSocket by hand; the response head is read, frames are not."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    request = rawclient.ws_upgrade_request(path, "127.0.0.1", rawclient.ws_key())
    writer.write(
        request.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: " + version.encode())
    )
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    return RawSocket(reader, writer, *parse_head(head))


def realtime_process(port: int, store: str, *args: str) -> subprocess.Popen[bytes]:
    """``python -m realtime`` on ``port`` with that ``--store``; its log is
    kept on stderr (a pipe) for the test's failure message."""
    return subprocess.Popen(
        [sys.executable, "-m", "realtime", "--port", str(port), "--store", store, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
