"""The room's direct path to a socket (``realtime.transports.direct``) on
real loopback connections, under asyncio's loop and under uvloop: the
duplicate descriptor reaches the same peer, and the transport says when it
starts and stops holding unsent bytes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest
import uvloop

from realtime.transports.direct import DirectSocket

from .helpers import until

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


class Server(asyncio.Protocol):
    """What aiohttp's protocol would be: records what it is told."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.received = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.received += data

    def pause_writing(self) -> None:
        self.calls.append("pause")

    def resume_writing(self) -> None:
        self.calls.append("resume")


async def connected() -> tuple[asyncio.Transport, Server, socket.socket]:
    """A server-side transport and its protocol, and the client's socket."""
    loop = asyncio.get_running_loop()
    made: asyncio.Future[Server] = loop.create_future()

    def factory() -> Server:
        proto = Server()
        loop.call_soon(made.set_result, proto)
        return proto

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.setblocking(False)
    proto = await made
    server.close()
    assert proto.transport is not None
    return proto.transport, proto, client


async def read_all(client: socket.socket, until: int) -> bytes:
    got = b""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(10):
        while len(got) < until:
            got += await loop.sock_recv(client, 1 << 16)
    return got


async def direct_path() -> None:
    transport, proto, client = await connected()
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    direct = DirectSocket(transport)
    assert direct.descriptor >= 0
    assert direct.descriptor != transport.get_extra_info("socket").fileno()
    changes: list[bool] = []
    assert direct.watch(changes.append) is False
    # the duplicate writes to the same peer, and reads still reach the protocol
    os.write(direct.descriptor, b"direct ")
    client.send(b"hello")
    assert await read_all(client, 7) == b"direct "
    await until(lambda: proto.received == b"hello")
    # the room fills the socket straight through the duplicate; then a ping
    # of the transport's own cannot go, is held, and the room is told at once
    filled = 0
    while True:
        try:
            filled += os.write(direct.descriptor, b"x" * 65536)
        except BlockingIOError:
            break
    transport.write(b"ping")
    assert changes == [True] and proto.calls == ["pause"]
    assert await read_all(client, filled + 4) == b"x" * filled + b"ping"
    await until(lambda: changes == [True, False])
    assert proto.calls == ["pause", "resume"]  # passed on to the inner protocol
    # released: the inner protocol is the transport's again, default limits
    direct.release()
    assert direct.descriptor == -1 and transport.get_protocol() is proto
    assert transport.get_write_buffer_limits()[1] > 0
    transport.write(b"after")
    assert await read_all(client, 5) == b"after"
    transport.close()
    client.close()


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_the_duplicate_reaches_the_peer_and_held_bytes_are_told(loop: str) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(direct_path())


def test_duplicates_stay_in_the_lower_half_of_the_descriptor_table() -> None:
    """With a soft limit of 64 open files: a duplicate while the table is
    nearly empty, none once its numbers reach 32, and the connection itself
    still opens."""
    script = """
import resource, socket
from realtime.transports.direct import spare_duplicate
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
first = socket.socket()
dup = spare_duplicate(first.fileno())
held = [socket.socket() for _ in range(40)]
late = socket.socket()
print(dup, spare_duplicate(late.fileno()), late.fileno())
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    dup, late_dup, late_fd = map(int, out)
    assert 0 <= dup < 32
    assert late_dup == -1 and late_fd >= 32


def test_no_duplicate_while_sigpipe_is_not_ignored() -> None:
    """A program embedding the server that restored SIGPIPE's default (which
    would kill the process on a write to a vanished peer) gets the
    transport's writes instead of the direct path."""
    script = """
import signal, socket
from realtime.transports.direct import spare_duplicate
s = socket.socket()
ignored = spare_duplicate(s.fileno())
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
print(ignored, spare_duplicate(s.fileno()))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    ignored, default = map(int, out)
    assert ignored >= 0 and default == -1
