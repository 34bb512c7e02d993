"""The connection lifecycle shared by the streaming transports: the room
writes to a duplicate of each socket's descriptor, and every duplicate is
closed when its connection ends, however it ends; nor does anything of the
connection outlive it in a reference cycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import struct
import weakref
from collections import Counter
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner
from aiohttp_sse import EventSourceResponse

from realtime import Settings, create_app

from .helpers import SseReader, post, until, ws_messages, ws_until


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def join_both(client: Any, room: str, n: int) -> tuple[list[Any], list[SseReader]]:
    """``n`` WebSockets and ``n`` SSE streams in ``room``, each past its presence event."""
    sockets = [await client.ws_connect(f"/rooms/{room}/ws?user=w{i}") for i in range(n)]
    streams = [SseReader(await client.get(f"/rooms/{room}/events?user=s{i}")) for i in range(n)]
    for ws in sockets:
        await ws_until(ws, "presence")
    for reader in streams:
        await reader.until("presence")
    return sockets, streams


async def test_every_connection_gets_messages_and_leaves_no_descriptor_behind(
    client: Any,
) -> None:
    await post(client, "warm", "open the store")  # the store's own files stay open
    before = open_descriptors()
    for round in range(3):
        room = f"fd{round}"
        sockets, streams = await join_both(client, room, 10)
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


# A peer that vanished while its handler was cancelled is found by the next
# heartbeat (aiohttp's ping for a WebSocket), which ends the socket for good.
HEARTBEAT = 0.5
SERVER_SIDE = (web.WebSocketResponse, EventSourceResponse)


class HandlersKept(TestServer):
    """A test server that lets the handler of a lost connection run on (its
    socket then reads the end itself); aiohttp's test server otherwise
    cancels it, as ``python -m realtime`` does."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return await super()._make_runner(**{**kwargs, "handler_cancellation": False})


def reset(transport: asyncio.Transport | None) -> None:
    """Drop the connection with a RST, as a peer that vanished does."""
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@pytest.mark.parametrize("handler_cancellation", [True, False], ids=["cancelled", "kept"])
async def test_a_connection_that_ends_is_freed_at_once_not_left_to_the_cycle_collector(
    aiohttp_client: Any, handler_cancellation: bool
) -> None:
    """However a connection ends (closed cleanly, or reset by a peer that
    vanished), nothing of it stays in a reference cycle: only the cycle
    collector's full pass frees those, and at ten thousand connections that
    pass stalls the event loop for most of a second. Whether the handler of
    a lost connection is cancelled (``python -m realtime``) or reads the end
    itself decides which way aiohttp meets the reset: both are checked."""
    app = create_app(Settings(store="memory", heartbeat=HEARTBEAT))
    client = await aiohttp_client(app if handler_cancellation else HandlersKept(app))
    gc.collect()
    gc.disable()
    try:
        sockets, streams = await join_both(client, "gc", 40)
        server_side = [weakref.ref(o) for o in gc.get_objects() if isinstance(o, SERVER_SIDE)]
        assert len(server_side) == 80
        for ws in sockets[:20]:
            await ws.close()
        for ws in sockets[20:]:
            reset(ws._response.connection.transport)
        for reader in streams[:20]:
            reader.resp.close()
        for reader in streams[20:]:
            reset(reader.resp.connection.transport)  # type: ignore[union-attr]
        with contextlib.suppress(AssertionError):  # reported below
            await until(lambda: all(ref() is None for ref in server_side))
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        in_cycles = Counter(type(o).__name__ for o in gc.garbage if isinstance(o, SERVER_SIDE))
        assert not in_cycles, f"left in reference cycles: {dict(in_cycles)}"
        assert all(ref() is None for ref in server_side), "connections still open"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
