"""WebSocket (RFC 6455) and Server-Sent Events over a bare socket, byte by byte.

No client library between the socket and the bytes. The benchmark's
subscribers parse with this (a library's per-frame cost would otherwise be
what they measure), and the tests use it where a library would hide what they
check: a client that never reads, never answers a ping, or reads the close
frame itself. In order: the HTTP/1.1 handshake, frames, asyncio streams,
then SSE (the chunked body, event blocks, event lines).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from typing import NamedTuple

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_HEAD = 65536  # bytes of a response head before we give up on it


# -- the HTTP/1.1 handshake ----------------------------------------------------------
def ws_key() -> bytes:
    return base64.b64encode(os.urandom(16))


def ws_accept(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def ws_upgrade_request(path: str, host: str, key: bytes) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def sse_request(path: str, host: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n\r\n"
    ).encode()


def get_request(path: str, host: str) -> bytes:
    """A keep-alive ``GET`` (HTTP/1.1 connections stay open unless one side says not)."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def check_status(head: bytes, expect: bytes) -> str | None:
    """None if the response head (without its blank line) has status ``expect``."""
    status = head.split(b"\r\n", 1)[0]
    parts = status.split(b" ", 2)
    if len(parts) < 2 or parts[1] != expect:
        return "HTTP " + (parts[1] if len(parts) > 1 else status).decode(errors="replace")
    return None


def check_ws_head(head: bytes, key: bytes) -> str | None:
    """None if ``head`` accepts the upgrade asked for with ``key``, else why not."""
    why = check_status(head, b"101")
    if why is None and ws_accept(key) not in head:
        why = "bad Sec-WebSocket-Accept"
    return why


def is_chunked(head: bytes) -> bool:
    return b"\r\ntransfer-encoding: chunked" in head.lower()


def content_length(head: bytes) -> int | None:
    """The ``Content-Length`` of a response head, if it has a valid one."""
    start = head.lower().find(b"\r\ncontent-length:")
    if start < 0:
        return None
    value = head[start + 17 :].split(b"\r\n", 1)[0].strip()
    return int(value) if value.isdigit() else None


# -- frames ------------------------------------------------------------------------------
class Frame(NamedTuple):
    opcode: int
    payload: bytes  # unmasked
    fin: bool = True
    masked: bool = False


def ws_mask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte key (masking and unmasking are the same)."""
    n = len(payload)
    if not n:
        return b""
    key = int.from_bytes(mask * (n // 4 + 1), "big") >> (8 * (4 - n % 4))
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def encode_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bytes = b""
) -> bytes:
    """One frame; with a 4-byte ``mask`` it is masked, as a client's must be."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    bit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, bit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, bit | 127, n)
    return head + mask + (ws_mask(payload, mask) if mask else payload)


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A final client frame under a fresh random mask (control frames: at most 125 bytes)."""
    return encode_frame(opcode, payload, mask=os.urandom(4))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def close_code(payload: bytes) -> int | None:
    """The status code of a close frame's payload (None when it carries none)."""
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


class FrameDecoder:
    """Frames out of a byte stream cut anywhere: 7/16/64-bit lengths, masked or not."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = b""  # the start of a frame not complete yet

    def feed(self, data: bytes) -> list[Frame]:
        buf = self.pending + data if self.pending else data
        size = len(buf)
        pos = 0
        frames: list[Frame] = []
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if size - start < 2:
                    break
                n = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif n == 127:
                if size - start < 8:
                    break
                n = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            masked = bool(b1 & 0x80)
            if masked:
                if size - start < 4:
                    break
                mask = buf[start : start + 4]
                start += 4
            end = start + n
            if end > size:
                break
            payload = buf[start:end]
            if masked:
                payload = ws_mask(payload, mask)
            frames.append(Frame(b0 & 0x0F, payload, bool(b0 & 0x80), masked))
            pos = end
        self.pending = buf[pos:] if pos < size else b""
        return frames


# -- asyncio streams -------------------------------------------------------------------
async def open_websocket(
    host: str, port: int, path: str, timeout: float = 5.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect and upgrade; the 101 and its ``Sec-WebSocket-Accept`` are checked."""
    reader, writer = await asyncio.open_connection(host, port)
    key = ws_key()
    writer.write(ws_upgrade_request(path, f"{host}:{port}", key))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    why = check_ws_head(head[:-4], key)
    if why is not None:
        writer.close()
        raise ConnectionError(f"{why}: {head[:200]!r}")
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """The next frame from a stream (server frames are not masked, client frames are)."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4) if b1 & 0x80 else b""
    payload = await reader.readexactly(n)
    return Frame(
        b0 & 0x0F, ws_mask(payload, mask) if mask else payload, bool(b0 & 0x80), bool(mask)
    )


# -- Server-Sent Events ----------------------------------------------------------------
class ChunkError(ValueError):
    """The body does not follow the chunked transfer coding."""


class Dechunker:
    """The data of an HTTP/1.1 chunked body, however the bytes are cut.

    :meth:`feed` returns the chunk data it completes, in order; ``finished``
    turns true at the last (zero-size) chunk, after which input is ignored.
    """

    __slots__ = ("finished", "need", "raw", "trail")

    def __init__(self) -> None:
        self.raw = b""  # unparsed framing
        self.need = -1  # bytes of chunk data still to come; -1: a size line is next
        self.trail = 0  # bytes of the CRLF after chunk data still to come
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        if self.finished:
            return b""
        buf = self.raw + data if self.raw else data
        size = len(buf)
        pos = 0
        need, trail = self.need, self.trail
        out: list[bytes] = []
        while pos < size:
            if trail:
                if trail == 2 and size - pos >= 2:
                    ok = buf[pos] == 13 and buf[pos + 1] == 10
                    pos, trail = pos + 2, 0
                else:
                    ok = buf[pos] == b"\r\n"[2 - trail]
                    pos, trail = pos + 1, trail - 1
                if not ok:
                    raise ChunkError("chunk data not followed by CRLF")
                continue
            if need < 0:  # "<hex>[;extension]\r\n"
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if size - pos > 1024:
                        raise ChunkError("chunk size line too long")
                    break
                try:
                    need = int(buf[pos:eol].split(b";", 1)[0], 16)
                except ValueError:
                    need = -2
                if need < 0:
                    raise ChunkError(f"bad chunk size line {bytes(buf[pos:eol])[:40]!r}")
                pos = eol + 2
                if need == 0:  # the last chunk (trailers do not matter here)
                    self.finished = True
                    self.raw = b""
                    return b"".join(out)
            take = min(need, size - pos)
            out.append(buf[pos : pos + take])
            pos += take
            need -= take
            if need == 0:
                need, trail = -1, 2
        self.need, self.trail = need, trail
        self.raw = buf[pos:] if pos < size else b""
        return out[0] if len(out) == 1 else b"".join(out)


def complete_events(text: bytes) -> int:
    """How many bytes at the start of ``text`` are whole events (each ends in a blank line)."""
    lf, crlf = text.rfind(b"\n\n"), text.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


@dataclass
class ServerSentEvent:
    event: str
    data: str
    id: str | None


class EventParser:
    """``text/event-stream`` lines into events, as a browser's EventSource reads them."""

    def __init__(self) -> None:
        self.retry: int | None = None
        self.last_id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def line(self, line: str) -> ServerSentEvent | None:
        """Take one line (its end of line may be left on); an event at a blank line."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event = None
        if self._data:
            event = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            if self._id is not None:
                self.last_id = self._id
        self._event, self._data, self._id = "", [], None
        return event
