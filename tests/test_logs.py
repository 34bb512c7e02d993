"""Log lines: key=value text by default, JSON objects with --log-format json."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct

import pytest

from realtime import logs

from .conftest import MakeClient


@pytest.fixture(autouse=True)
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("INFO", "json")
    log = logging.getLogger("realtime.conn")
    logs.event(log, "connect", conn="ab12cd", transport="ws", room="lobby", user="ana b")
    log.info("plain %s", "text")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["event"] == "connect" and lines[0]["user"] == "ana b"
    assert lines[0]["transport"] == "ws" and lines[0]["level"] == "info"
    assert lines[1]["msg"] == "plain text"


def test_text_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("INFO", "text")
    logs.event(logging.getLogger("realtime.conn"), "disconnect", conn="x", user="ana b", code=1001)
    line = capsys.readouterr().err.strip()
    assert line.endswith('disconnect conn=x user="ana b" code=1001')


# -- a client's faults are one quiet line, never an ERROR traceback ----------


def reset(sock: socket.socket) -> None:
    """Hang up the rude way: RST, no FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name} {r.levelname} {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info
    ]


UPGRADE = (
    "GET /rooms/r/ws?user=u{n} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)
STREAM = "GET /rooms/r/events?user=u{n} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def test_clients_resetting_during_the_handshake_log_no_error(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client()
    loop = asyncio.get_running_loop()
    for n in range(150):
        for template in (UPGRADE, STREAM):
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, (client.host, client.port))
            await loop.sock_sendall(sock, template.format(n=n).encode())
            if n % 3:
                await asyncio.sleep(0.001 * (n % 5))
            reset(sock)
    assert (await client.get("/healthz")).status == 200
    await asyncio.sleep(0.2)
    assert errors(caplog) == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\nHost: x\n\n",  # bare LF
        b"GET /rooms/r/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1\n2\r\n\r\n",
        b"GET /rooms/r/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: \x01\r\n\r\n",
    ],
)
async def test_a_malformed_request_is_one_line_without_traceback(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request_bytes)
    head = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert head.split(b" ", 2)[1] == b"400", head
    assert errors(caplog) == []
    client_lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(client_lines) == 1 and "\n" not in client_lines[0].getMessage()
