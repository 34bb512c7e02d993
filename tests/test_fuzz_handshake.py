"""Generated handshakes never crash the server nor log an error.

Hypothesis draws the WebSocket upgrade's headers (Upgrade, Connection,
Sec-WebSocket-Key, Sec-WebSocket-Version, Sec-WebSocket-Protocol, Origin)
and the SSE request's ``Last-Event-ID``, including bytes no client library
would send (control characters, bare LF, non-ASCII). They go out over a raw
socket to one real server per test.

What must hold after every example:
- the answer is a clear status (101/200, or 400, 403, 426, 505; never 500);
- a 101 carries the right ``Sec-WebSocket-Accept`` and the socket works
  (a masked text frame is stored); a 426 names version 13;
- nothing is logged at ERROR, and no subscriber is left behind.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import Counter
from typing import Any

import pytest
from hypothesis import strategies as st

from benchmarks import rawclient

from .conftest import MakeClient
from .helpers import RawSocket, parse_head
from .test_fuzz import assert_no_members, run_examples

ANSWERS = {101, 200, 400, 403, 426, 505}

header_text = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["", " ", "\t", "a\nb", "a\rb", "\x00", "é", "1\n2"]),
)


def mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid four times in five, so that many examples really upgrade."""
    return st.sampled_from([True, True, True, True, False]).flatmap(lambda ok: valid if ok else odd)


good_key = st.binary(min_size=16, max_size=16).map(lambda b: base64.b64encode(b).decode())
keys = mostly(
    good_key,
    st.one_of(st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode()), header_text),
)
versions = mostly(
    st.just("13"), st.one_of(st.sampled_from(["8", "7", "0", "14", "", "13, 8"]), header_text)
)
upgrades = mostly(st.sampled_from(["websocket", "WebSocket"]), header_text)
connections = mostly(
    st.sampled_from(["Upgrade", "keep-alive, Upgrade"]), st.one_of(st.just("close"), header_text)
)
origins = mostly(
    st.sampled_from([None, "http://127.0.0.1"]),
    st.one_of(st.sampled_from(["https://evil.example", "null"]), header_text),
)
protocols = mostly(
    st.sampled_from([None, "realtime", "chat, realtime"]), st.one_of(st.just(""), header_text)
)
ids = mostly(st.sampled_from(["", "1", "2", "99", "0", "1-0"]), header_text)


def header_block(headers: dict[str, str | None]) -> bytes:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v is not None)
    return lines.encode("latin-1", "replace")


async def exchange(client: Any, head: bytes) -> RawSocket:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(head)
    async with asyncio.timeout(10):
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raw = exc.partial
    if not raw:
        return RawSocket(reader, writer, 0, {})
    return RawSocket(reader, writer, *parse_head(raw))


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_websocket_handshakes(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await make_client()
    upgraded = 0
    statuses: Counter[int] = Counter()

    async def check(
        key: str, version: str, upgrade: str, connection: str, origin: Any, protocol: Any
    ) -> None:
        nonlocal upgraded
        head = b"GET /rooms/h/ws?user=f HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header_block(
            {
                "Upgrade": upgrade,
                "Connection": connection,
                "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": version,
                "Origin": origin,
                "Sec-WebSocket-Protocol": protocol,
            }
        )
        raw = await exchange(client, head + b"\r\n")
        statuses[raw.status] += 1
        try:
            assert raw.status in ANSWERS, (raw.status, head)
            if raw.status == 426:
                assert raw.headers["sec-websocket-version"] == "13"
            if raw.status == 101:
                upgraded += 1
                accept = rawclient.ws_accept(key.encode()).decode()
                assert raw.headers["sec-websocket-accept"] == accept
                text = f"hello {upgraded}"
                raw.writer.write(
                    rawclient.client_frame(rawclient.TEXT, b'{"text":"%s"}' % text.encode())
                )
                while True:  # up to our own message: the socket works
                    got = await raw.read_frame()
                    assert got.opcode == rawclient.TEXT
                    if text.encode() in got.payload:
                        break
        finally:
            raw.close()
        await assert_no_members(client)
        assert errors(caplog) == []

    ran = await run_examples(check, keys, versions, upgrades, connections, origins, protocols)
    assert ran >= 50
    assert upgraded >= 5, statuses
    assert (await client.get("/healthz")).status == 200


async def test_event_stream_requests(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await make_client()
    for i in range(3):
        assert (await client.post("/rooms/h/messages", json={"text": f"m{i}"})).status == 201
    streamed = 0

    async def check(last_event_id: str, accept: Any) -> None:
        nonlocal streamed
        head = b"GET /rooms/h/events?user=f HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header_block(
            {"Last-Event-ID": last_event_id, "Accept": accept}
        )
        raw = await exchange(client, head + b"\r\n")
        try:
            assert raw.status in ANSWERS, (raw.status, head)
            if raw.status == 200:
                streamed += 1
                async with asyncio.timeout(5):
                    while not (await raw.reader.readline()).startswith(b"event: presence"):
                        pass
        finally:
            raw.close()
        await assert_no_members(client)
        assert errors(caplog) == []

    ran = await run_examples(check, ids, mostly(st.none(), header_text))
    assert ran >= 50
    assert streamed >= 5
