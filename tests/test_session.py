"""The connection lifecycle shared by the streaming transports: the room
writes to a duplicate of each socket's descriptor, and every duplicate is
closed when its connection ends, however it ends."""

from __future__ import annotations

import os
from typing import Any

from .helpers import SseReader, post, until, ws_messages, ws_until


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_every_connection_gets_messages_and_leaves_no_descriptor_behind(
    client: Any,
) -> None:
    await post(client, "warm", "open the store")  # the store's own files stay open
    before = open_descriptors()
    for round in range(3):
        room = f"fd{round}"
        sockets = [await client.ws_connect(f"/rooms/{room}/ws?user=w{i}") for i in range(10)]
        streams = []
        for i in range(10):
            resp = await client.get(f"/rooms/{room}/events?user=s{i}")
            streams.append(SseReader(resp))
        for ws in sockets:
            await ws_until(ws, "presence")
        sent = await post(client, room, "to everyone")
        for ws in sockets:
            assert [m["id"] for m in await ws_messages(ws, 1)] == [sent["id"]]
        for reader in streams:
            assert [m["id"] for m in await reader.messages(1)] == [sent["id"]]
        # each connection: the client's socket, the server's, and the room's duplicate
        assert open_descriptors() >= before + 20 * 3
        # half close cleanly, half just drop the connection
        for ws in sockets[:5]:
            await ws.close()
        for ws in sockets[5:]:
            ws._response.connection.transport.abort()  # type: ignore[union-attr]
        for reader in streams:
            reader.resp.close()
        await until(lambda: open_descriptors() <= before)  # every descriptor closed
