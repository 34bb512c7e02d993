"""The application's HTTP edge over raw sockets: how long a client may take."""

from __future__ import annotations

import asyncio
from typing import Any

from .conftest import MakeClient


async def open_raw(client: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(client.host, client.port)


async def test_a_slow_header_sender_is_cut(make_client: MakeClient) -> None:
    client = await make_client(request_timeout=1.0)
    reader, writer = await open_raw(client)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    got = b""
    try:
        # One header line every 0.3 s never completes the request; the
        # server hangs up long before this loop would end.
        for i in range(40):
            writer.write(b"X-Slow-%d: y\r\n" % i)
            await writer.drain()
            try:
                got = await asyncio.wait_for(reader.read(1024), 0.3)
            except TimeoutError:
                continue
            break
    except ConnectionError:
        got = b""
    finally:
        writer.close()
    assert got == b"", got  # closed, with no response


async def test_a_connection_that_sends_nothing_is_closed(make_client: MakeClient) -> None:
    client = await make_client(request_timeout=0.5)
    reader, writer = await open_raw(client)
    try:
        assert await asyncio.wait_for(reader.read(1024), 10) == b""
    finally:
        writer.close()


async def test_a_prompt_client_is_served_after_the_timeout(make_client: MakeClient) -> None:
    client = await make_client(request_timeout=0.5)
    reader, writer = await open_raw(client)
    await asyncio.sleep(0.2)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 200")
    writer.close()
