"""Fan-out isolation: a client that stops reading is dropped, nobody else waits."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from typing import Any

import pytest

from benchmarks import rawclient

from .conftest import MakeClient
from .helpers import SseReader, ws_messages, ws_until

TEXT = "x" * 4000


async def stalled_connection(client: Any, request: bytes) -> socket.socket:
    """A connection with a tiny receive buffer whose owner never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (client.host, client.port))
    await loop.sock_sendall(sock, request)
    return sock


async def members(client: Any, room: str) -> dict[str, int]:
    for r in (await (await client.get("/rooms")).json())["rooms"]:
        if r["room"] == room:
            counts: dict[str, int] = r["members"]
            return counts
    return {"ws": 0, "sse": 0}


async def read_ws_close_code(sock: socket.socket) -> int | None:
    """Read the stalled socket to its end and return the close frame's code."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    async with asyncio.timeout(10):
        while chunk := await loop.sock_recv(sock, 1 << 20):
            data += chunk
    body = bytes(data[data.index(b"\r\n\r\n") + 4 :])
    for frame in rawclient.FrameDecoder().feed(body):
        if frame.opcode == rawclient.CLOSE:
            return rawclient.close_code(frame.payload)
    return None


async def test_stalled_clients_are_dropped_and_others_get_everything(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_buffer_bytes=64 * 1024, replay=0)
    key = rawclient.ws_key()
    ws_request = rawclient.ws_upgrade_request("/rooms/s/ws?user=stuck-ws", "127.0.0.1", key)
    sse_request = rawclient.sse_request("/rooms/s/events?user=stuck-sse", "127.0.0.1")
    stalled_ws = await stalled_connection(client, ws_request)
    stalled_sse = await stalled_connection(client, sse_request)
    reader = SseReader(await client.get("/rooms/s/events?user=good-sse"))
    async with (
        client.ws_connect("/rooms/s/ws?user=good-ws") as good,
        client.ws_connect("/rooms/s/ws?user=publisher") as publisher,
    ):
        await ws_until(good, "presence")
        async with asyncio.timeout(5):
            while await members(client, "s") != {"ws": 3, "sse": 2}:  # noqa: ASYNC110
                await asyncio.sleep(0.02)

        async def collect_ws() -> list[str]:
            out: list[str] = []
            while not out or out[-1] != "end":
                out += [m["client_id"] for m in await ws_messages(good, 1, timeout=30)]
            return out

        async def collect_sse() -> list[str]:
            out: list[str] = []
            while not out or out[-1] != "end":
                out += [m["client_id"] for m in await reader.messages(1, timeout=30)]
            return out

        readers = asyncio.gather(collect_ws(), collect_sse())
        # Publish until both stalled clients are dropped (bounded: 4000 x 4 KB),
        # in bursts the readers (on this same event loop) take in within the bound.
        sent = 0
        for sent in range(1, 4001):
            await publisher.send_json({"text": TEXT, "client_id": str(sent)})
            if sent % 10 == 0:
                await ws_messages(publisher, 10, timeout=10)
                if await members(client, "s") == {"ws": 2, "sse": 1}:
                    break
        counts = await members(client, "s")
        assert counts == {"ws": 2, "sse": 1}, f"stalled clients kept after {sent}: {counts}"
        close_code = asyncio.create_task(read_ws_close_code(stalled_ws))
        await publisher.send_json({"text": "bye", "client_id": "end"})
        received_ws, received_sse = await readers

    expected = [str(i) for i in range(1, sent + 1)] + ["end"]
    assert received_ws == expected
    assert received_sse == expected
    assert await close_code == 1013
    stalled_ws.close()
    stalled_sse.close()


async def dropped_slow(client: Any) -> float:
    text = await (await client.get("/metrics")).text()
    match = re.search(r"^realtime_slow_consumers_dropped_total ([0-9.e+-]+)$", text, re.M)
    assert match, text
    return float(match.group(1))


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_a_stalled_reader_is_dropped_once_max_buffer_is_unsent(
    make_client: MakeClient, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The bound counts what the kernel holds too: a reader that stops is
    dropped once about --max-buffer-bytes are unsent, not megabytes later."""
    caplog.set_level(logging.INFO)
    bound = 256 * 1024
    client = await make_client(max_buffer_bytes=bound, replay=0)
    path = f"/rooms/k/{'ws' if transport == 'ws' else 'events'}?user=stuck"
    if transport == "ws":
        request = rawclient.ws_upgrade_request(path, "127.0.0.1", rawclient.ws_key())
    else:
        request = rawclient.sse_request(path, "127.0.0.1")
    stalled = await stalled_connection(client, request)
    async with asyncio.timeout(5):
        while (await members(client, "k"))[transport] != 1:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    message = "y" * 3000
    published = 0
    async with client.ws_connect("/rooms/k/ws?user=publisher") as publisher:
        for sent in range(1, 3001):  # bounded: 9 MB
            await publisher.send_json({"text": message})
            published += len(message)
            if sent % 10 == 0:
                await ws_messages(publisher, 10, timeout=10)
                if await dropped_slow(client) == 1:
                    break
    assert await dropped_slow(client) == 1, f"still connected after {published} bytes"
    # What the stalled client's own receive buffer holds comes on top.
    assert published <= 2 * bound, published
    if transport == "ws":
        assert await read_ws_close_code(stalled) == 1013
    stalled.close()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("realtime")]
    assert any(line.startswith("dropped ") and "slow consumer" in line for line in lines)
    disconnect = next(
        line for line in lines if line.startswith("disconnect ") and "user=stuck" in line
    )
    assert "reason=slow" in disconnect
    if transport == "ws":
        assert "code=1013" in disconnect
