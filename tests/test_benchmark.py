"""A short run of benchmarks/fanout.py: every message reaches every subscriber once.

No timing thresholds: speed is what the benchmark reports, not what a test asserts.
"""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from benchmarks.dialect import REALTIME, Endpoint
from benchmarks.poll_subscribers import RawPoll
from benchmarks.raw_subscribers import RawEventSource, RawWebSocket
from benchmarks.rawclient import FrameDecoder, encode_frame, ws_accept, ws_mask
from benchmarks.subscription import Latencies, Subscription

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "fanout.py"


PLAN = ["--subscribers", "5", "--duration", "1", "--rate", "20", "--drain", "3"]


def run_fanout(tmp_path: Path, command: list[str], args: list[str]) -> tuple[list[Any], str]:
    """The runs of one bounded benchmark command (as JSON), and what it printed."""
    out = tmp_path / "fanout.json"
    proc = subprocess.run(
        [sys.executable, *command, *args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs: list[Any] = json.loads(out.read_text())["runs"]
    return runs, proc.stdout


def check_everything_delivered(run: dict[str, Any], client: str) -> None:
    """5 subscribers, 20 messages: each delivery once, with a latency from this run."""
    label = f"{run['transport']}: {run}"
    assert run["publish_via"] == ("ws" if run["transport"] == "ws" else "post")
    assert run["client"] == client, label
    assert run["accepted"] == run["published"] == 20, label
    assert run["connect_ready"] == run["live_at_start"] == 5, label
    assert run["delivered"] == 5 * 20, label
    assert run["lost"] == 0 and run["duplicates"] == 0 and run["dropped"] == 0, label
    assert run["deliveries_per_s"] > 0, label
    lat = run["latency"]
    assert lat["count"] == 100, label
    assert 0 < lat["min_ms"] <= lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"], label
    assert lat["max_ms"] < 60_000, label  # a stamp from this run, not garbage
    first, last = run["first_delivery"], run["last_delivery"]
    assert first["count"] == last["count"] == 20, label
    assert first["p50_ms"] <= last["p50_ms"] <= lat["max_ms"], label


@pytest.mark.parametrize("client", ["raw", "aiohttp"])
def test_fanout_smoke_run_delivers_everything(tmp_path: Path, client: str) -> None:
    args = PLAN + (["--client", client] if client != "raw" else [])  # raw is the default
    runs, printed = run_fanout(tmp_path, [str(SCRIPT)], args)
    assert {r["transport"] for r in runs} == {"ws", "sse"}
    for run in runs:
        check_everything_delivered(run, client)
    assert "p99.9" in printed  # the table was printed


@pytest.mark.parametrize("client", ["raw", "aiohttp"])
def test_fanout_over_long_polling_delivers_everything(tmp_path: Path, client: str) -> None:
    args = [*PLAN, "--transports", "poll", "--client", client]
    runs, printed = run_fanout(tmp_path, ["-m", "benchmarks.fanout"], args)
    assert [r["transport"] for r in runs] == ["poll"]
    check_everything_delivered(runs[0], client)
    assert printed.startswith("poll (published via post")


def test_fanout_against_a_peer_delivers_everything_on_both(tmp_path: Path) -> None:
    """``--peer``: the same plan against a server of the reference peers' routes, in turns."""
    peer = ROOT / "tests" / "peer_server.py"
    args = [*PLAN, "--client", "aiohttp", "--repeat", "2"]
    runs, printed = run_fanout(
        tmp_path, ["-m", "benchmarks.fanout"], [*args, "--peer", "python", "--peer-path", str(peer)]
    )
    order = [(r["transport"], r["server"]) for r in runs]
    assert order == [
        (t, s) for t in ("ws", "sse") for _ in range(2) for s in ("realtime", "python")
    ]
    for run in runs:
        check_everything_delivered(run, "aiohttp")
        assert run["server_cores"] is not None and run["server_user_cores"] is not None
    for transport in ("ws", "sse"):
        assert f"{transport} N=5, 20 msg/s, aiohttp client: medians of 2 and 2 runs" in printed
    assert "realtime/python" in printed and "delivered in time" in printed


def test_fanout_refuses_a_remote_url() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", "http://192.0.2.1:8080"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "--allow-remote" in proc.stderr


# -- the raw-socket subscribers' parsers ----------------------------------------------
T = TypeVar("T")
TOTAL = 8
SEND_NS = 1_000  # a stamp long before any receive time: every latency is positive


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def in_loop(fn: Callable[[], T]) -> T:
    """Run ``fn`` inside a running loop (the protocols create futures)."""

    async def call() -> T:
        return fn()

    return asyncio.run(call())


def stamped(seq: int, pad: int = 0) -> bytes:
    text = f"~{SEND_NS}~{seq}~" + "x" * pad
    return json.dumps(
        {"type": "message", "id": str(seq), "text": text}, separators=(",", ":")
    ).encode()


def presence(user: str, members: list[str]) -> bytes:
    body = {
        "type": "presence", "room": "r", "event": "join", "user": user, "transport": "ws",
        "count": len(members), "members": [{"user": m, "transport": "ws"} for m in members],
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


def client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """``(opcode, unmasked payload)`` of client frames, which must be final and masked."""
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert decoder.pending == b"", "only whole frames"
    assert all(f.fin and f.masked for f in frames), "client frames are final and masked"
    assert all(len(f.payload) < 126 for f in frames)  # only control frames here
    return [(f.opcode, f.payload) for f in frames]


def new_ws() -> tuple[RawWebSocket, Subscription, Latencies, FakeTransport]:
    sub, lat = Subscription("s1", bytearray(TOTAL)), Latencies(TOTAL)
    proto = RawWebSocket(sub, lat, "/rooms/r/ws?user=s1", "127.0.0.1:8080")
    transport = FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    return proto, sub, lat, transport


def ws_head(proto: RawWebSocket, status: bytes = b"101 Switching Protocols") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ws_accept(proto.key) + b"\r\n\r\n"
    )


WS_FRAMES = b"".join(
    [
        encode_frame(0x1, presence("s9", ["s1", "s9"])),  # someone else's join: not ready yet
        encode_frame(0x1, presence("s1", ["s1", "s9"])),
        encode_frame(0x1, stamped(0)),  # 7-bit length
        encode_frame(0x9, b"hb-1"),
        encode_frame(0x1, stamped(1, pad=300)),  # 16-bit length
        encode_frame(0x1, stamped(2)[:20], fin=False),  # fragmented, a ping in between
        encode_frame(0x9, b""),
        encode_frame(0x0, stamped(2)[20:]),
        encode_frame(0x1, stamped(0)),  # a duplicate
        encode_frame(0xA, b"unsolicited pong"),
        encode_frame(0x1, stamped(3), mask=b"\x01\x02\x03\x04"),
        encode_frame(0x1, stamped(99)),  # not a message of this run
        encode_frame(0x8, struct.pack("!H", 1013) + b"slow"),
        encode_frame(0x1, stamped(4)),  # after the close: ignored
    ]
)


def check_ws(
    proto: RawWebSocket, sub: Subscription, lat: Latencies, transport: FakeTransport
) -> None:
    assert proto.handshake.done() and proto.handshake.exception() is None
    assert sub.ready.is_set()
    assert list(sub.seen) == [1, 1, 1, 1, 0, 0, 0, 0]
    assert (sub.received, sub.duplicates, sub.unknown) == (4, 1, 1)
    assert len(lat.all) == 4 and min(lat.all) > 0
    assert [lat.first[s] == lat.last[s] > 0 for s in range(4)] == [True] * 4
    assert sub.closed == "websocket closed by server, code 1013"
    request, *replies = transport.written
    assert request.startswith(b"GET /rooms/r/ws?user=s1 HTTP/1.1\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in request
    assert b"\r\nSec-WebSocket-Key: " + proto.key + b"\r\n" in request
    frames = client_frames(b"".join(replies))
    assert frames == [(0xA, b"hb-1"), (0xA, b""), (0x8, struct.pack("!H", 1013))]
    assert transport.closed


def test_raw_websocket_parses_frames_split_anywhere() -> None:
    def run() -> None:
        for cut in range(len(ws_head(new_ws()[0]) + WS_FRAMES) + 1):
            proto, sub, lat, transport = new_ws()
            stream = ws_head(proto) + WS_FRAMES
            proto.data_received(stream[:cut])
            proto.data_received(stream[cut:])
            check_ws(proto, sub, lat, transport)
        proto, sub, lat, transport = new_ws()
        for byte in ws_head(proto) + WS_FRAMES:  # one byte per call
            proto.data_received(bytes([byte]))
        check_ws(proto, sub, lat, transport)

    in_loop(run)


def test_raw_websocket_64_bit_length() -> None:
    def run() -> None:
        proto, sub, _, transport = new_ws()
        big = encode_frame(0x1, stamped(5, pad=70_000))
        assert big[1] == 127
        stream = ws_head(proto) + big + encode_frame(0x1, stamped(6))
        head_end = len(ws_head(proto))
        for i in range(head_end + 12):  # the head and the 64-bit length byte by byte
            proto.data_received(stream[i : i + 1])
        for i in range(head_end + 12, len(stream), 4096):
            proto.data_received(stream[i : i + 4096])
        assert sub.seen[5] == sub.seen[6] == 1 and sub.received == 2
        assert sub.closed is None and not transport.closed

    in_loop(run)


def test_raw_websocket_refuses_a_bad_handshake() -> None:
    def run() -> None:
        proto, sub, _, transport = new_ws()
        proto.data_received(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        assert sub.closed == "HTTP 403" and transport.aborted
        proto.connection_lost(None)
        assert isinstance(proto.handshake.exception(), ConnectionError) and proto.done.done()

        proto, sub, _, transport = new_ws()
        head = ws_head(proto).replace(ws_accept(proto.key), b"c29tZXRoaW5nIGVsc2U=")
        proto.data_received(head)
        assert sub.closed == "bad Sec-WebSocket-Accept" and transport.aborted

    in_loop(run)


def test_raw_websocket_closing_it_ourselves_records_nothing() -> None:
    def run() -> None:
        proto, sub, _, transport = new_ws()
        proto.data_received(ws_head(proto))
        proto.close()
        proto.connection_lost(None)
        assert sub.closed is None and transport.closed and proto.done.done()
        assert client_frames(transport.written[-1]) == [(0x8, struct.pack("!H", 1000))]

        proto, sub, _, _ = new_ws()
        proto.data_received(ws_head(proto))
        proto.connection_lost(ConnectionResetError("reset"))
        assert sub.closed == "connection lost: ConnectionResetError: reset"

    in_loop(run)


def test_ws_mask_round_trip() -> None:
    for n in range(10):
        payload = bytes(range(1, n + 1))
        masked = ws_mask(payload, b"\xa1\xb2\xc3\xd4")
        assert masked == bytes(b ^ b"\xa1\xb2\xc3\xd4"[i % 4] for i, b in enumerate(payload))
        assert ws_mask(masked, b"\xa1\xb2\xc3\xd4") == payload


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def chunk(block: bytes, size_line: bytes | None = None) -> bytes:
    return (size_line or b"%x" % len(block)) + b"\r\n" + block + b"\r\n"


def sse_block(kind: str, data: bytes, event_id: int | None = None) -> bytes:
    head = b"id: %d\n" % event_id if event_id is not None else b""
    return head + b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


SPLIT_BLOCK = sse_block("message", stamped(4), 5)
SSE_BODY = b"".join(
    [
        chunk(b"retry: 1000\n\n"),
        chunk(sse_block("presence", presence("s9", ["s1", "s9"]))),
        chunk(sse_block("presence", presence("s1", ["s1", "s9"]))),
        chunk(b": ping\n\n"),
        chunk(sse_block("message", stamped(0), 1)),
        chunk(sse_block("message", stamped(1, pad=300), 2), b"%X;ext=1" % 0),  # size set below
        chunk(sse_block("message", stamped(2), 3) + sse_block("message", stamped(3), 4)),
        chunk(SPLIT_BLOCK[:25]),  # one event block over two chunks
        chunk(SPLIT_BLOCK[25:]),
        chunk(sse_block("message", stamped(0), 6)),  # a duplicate
        b"0\r\n\r\n",
        chunk(sse_block("message", stamped(5), 7)),  # after the last chunk: ignored
    ]
)
# the chunk with an extension and an upper-case size
_EXT = sse_block("message", stamped(1, pad=300), 2)
SSE_BODY = SSE_BODY.replace(b"0;ext=1\r\n" + _EXT, b"%X;ext=1\r\n" % len(_EXT) + _EXT)


def new_sse() -> tuple[RawEventSource, Subscription, Latencies, FakeTransport]:
    sub, lat = Subscription("s1", bytearray(TOTAL)), Latencies(TOTAL)
    proto = RawEventSource(sub, lat, "/rooms/r/events?user=s1", "127.0.0.1:8080")
    transport = FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    return proto, sub, lat, transport


def check_sse(
    proto: RawEventSource, sub: Subscription, lat: Latencies, transport: FakeTransport
) -> None:
    assert proto.handshake.done() and proto.handshake.exception() is None
    assert sub.ready.is_set()
    assert list(sub.seen) == [1, 1, 1, 1, 1, 0, 0, 0]
    assert (sub.received, sub.duplicates, sub.unknown) == (5, 1, 0)
    assert len(lat.all) == 5 and min(lat.all) > 0
    assert sub.closed == "event stream ended by server" and transport.closed
    request = transport.written[0]
    assert request.startswith(b"GET /rooms/r/events?user=s1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"\r\nAccept: text/event-stream\r\n" in request and request.endswith(b"\r\n\r\n")


def test_raw_event_source_parses_chunks_split_anywhere() -> None:
    assert b"%X;ext=1\r\n" % len(_EXT) in SSE_BODY
    stream = SSE_HEAD + SSE_BODY

    def run() -> None:
        for cut in range(len(stream) + 1):
            proto, sub, lat, transport = new_sse()
            proto.data_received(stream[:cut])
            proto.data_received(stream[cut:])
            check_sse(proto, sub, lat, transport)
        proto, sub, lat, transport = new_sse()
        for byte in stream:
            proto.data_received(bytes([byte]))
        check_sse(proto, sub, lat, transport)

    in_loop(run)


def test_raw_event_source_end_of_stream_and_errors() -> None:
    def run() -> None:
        proto, sub, _, _ = new_sse()
        proto.data_received(SSE_HEAD + chunk(sse_block("message", stamped(0), 1)))
        assert sub.received == 1 and sub.closed is None
        proto.eof_received()
        proto.connection_lost(None)
        assert sub.closed == "event stream ended by server" and proto.done.done()

        proto, sub, _, transport = new_sse()
        proto.data_received(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}")
        assert sub.closed == "HTTP 429" and transport.aborted

        proto, sub, _, transport = new_sse()
        proto.data_received(SSE_HEAD + b"zz\r\n")
        assert sub.closed is not None and sub.closed.startswith("bad chunk size line")
        assert transport.aborted

        proto, sub, _, transport = new_sse()
        proto.data_received(SSE_HEAD + b"3\r\nabcXY")
        assert sub.closed == "chunk data not followed by CRLF" and transport.aborted

        proto, sub, _, transport = new_sse()
        proto.data_received(SSE_HEAD)
        proto.close()
        proto.connection_lost(None)
        assert sub.closed is None and transport.closed

    in_loop(run)


def test_raw_event_source_reads_events_with_crlf_line_ends() -> None:
    """The peers' SSE may end lines with CRLF; realtime's end with LF."""
    body = b"".join(chunk(b"data: " + stamped(seq) + b"\r\n\r\n") for seq in range(3))
    stream = SSE_HEAD + body

    def run() -> None:
        for cut in range(len(stream) + 1):
            proto, sub, _, _ = new_sse()
            proto.data_received(stream[:cut])
            proto.data_received(stream[cut:])
            assert list(sub.seen) == [1, 1, 1, 0, 0, 0, 0, 0] and sub.closed is None

    in_loop(run)


def poll_answer(body: bytes, status: bytes = b"200 OK") -> bytes:
    head = b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


POLL_STREAM = b"".join(
    [
        poll_answer(b'{"room":"r","events":[],"next":"0"}'),  # the first answer: live from here
        poll_answer(b'{"room":"r","events":[%b,%b],"next":"2"}' % (stamped(0), stamped(1))),
        poll_answer(b'{"room":"r","events":[%b],"next":null}' % stamped(1)),  # a duplicate
        poll_answer(b'{"room":"r","events":[%b],"next":"3"}' % stamped(2)),
    ]
)


def new_poll() -> tuple[RawPoll, Subscription, FakeTransport]:
    sub, lat = Subscription("s1", bytearray(TOTAL)), Latencies(TOTAL)
    at = Endpoint("http://127.0.0.1:8080", REALTIME, "poll", "r")
    proto = RawPoll(sub, lat, at, "127.0.0.1:8080")
    transport = FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    return proto, sub, transport


def test_raw_poll_follows_next_however_answers_are_split() -> None:
    def check(proto: RawPoll, sub: Subscription, transport: FakeTransport) -> None:
        assert sub.ready.is_set() and proto.handshake.done() and sub.closed is None
        assert list(sub.seen) == [1, 1, 1, 0, 0, 0, 0, 0]
        assert (sub.received, sub.duplicates, sub.unknown) == (3, 1, 0)
        paths = [req.split(b" ")[1] for req in transport.written]
        assert paths == [
            b"/rooms/r/poll?user=s1&since=0&timeout=0",
            b"/rooms/r/poll?user=s1&since=0&timeout=25",
            b"/rooms/r/poll?user=s1&since=2&timeout=25",
            b"/rooms/r/poll?user=s1&timeout=25",  # after a gap: from the newest on
            b"/rooms/r/poll?user=s1&since=3&timeout=25",
        ]
        assert all(
            req.endswith(b" HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n") for req in transport.written
        )

    def run() -> None:
        for cut in range(len(POLL_STREAM) + 1):
            proto, sub, transport = new_poll()
            proto.data_received(POLL_STREAM[:cut])
            proto.data_received(POLL_STREAM[cut:])
            check(proto, sub, transport)
        proto, sub, transport = new_poll()
        for byte in POLL_STREAM:
            proto.data_received(bytes([byte]))
        check(proto, sub, transport)

    in_loop(run)


def test_raw_poll_refuses_an_error_or_an_answer_without_length() -> None:
    def run() -> None:
        proto, sub, transport = new_poll()
        proto.data_received(poll_answer(b'{"type":"error"}', b"503 Service Unavailable"))
        assert sub.closed == "HTTP 503" and transport.aborted and not sub.ready.is_set()

        proto, sub, transport = new_poll()
        proto.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert sub.closed == "poll answer without Content-Length" and transport.aborted

    in_loop(run)
