"""A TCP proxy on loopback for network faults between a client and a server:
``mute()`` silently drops what the server sends on the open connections,
``cut()`` closes them. New connections pass through untouched."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Pipe:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    muted: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.pipes: list[Pipe] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def mute(self) -> None:
        for pipe in self.pipes:
            pipe.muted = True

    def cut(self) -> None:
        for pipe in self.pipes:
            for task in pipe.tasks:
                task.cancel()
            pipe.client.close()
            pipe.server.close()
        self.pipes.clear()

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection(*self.target)
        pipe = Pipe(c_writer, s_writer)
        self.pipes.append(pipe)
        pipe.tasks = [
            asyncio.create_task(self._pump(c_reader, s_writer, pipe, upstream=True)),
            asyncio.create_task(self._pump(s_reader, c_writer, pipe, upstream=False)),
        ]

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pipe: Pipe, upstream: bool
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if upstream or not pipe.muted:
                    writer.write(chunk)
                    await writer.drain()
        writer.close()
