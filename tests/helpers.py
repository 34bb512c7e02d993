"""Small clients used by the tests: an SSE event reader and WebSocket helpers."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
        self.retry: int | None = None
        self.last_id: str | None = None

    async def next(self, timeout: float = 5.0) -> SseEvent:
        async with asyncio.timeout(timeout):
            return await self._next()

    async def _next(self) -> SseEvent:
        fields: dict[str, str] = {}
        while True:
            raw = await self.resp.content.readline()
            if raw == b"":
                raise EOFError("event stream ended")
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if "data" in fields:
                    ev = SseEvent(
                        fields.get("event", "message"), json.loads(fields["data"]), fields.get("id")
                    )
                    if ev.id is not None:
                        self.last_id = ev.id
                    return ev
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "retry":
                self.retry = int(value)
            else:
                fields[name] = value

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
