"""What one subscriber records: stamped messages, their latencies, and readiness.

A message's text carries the publisher's stamp, ``~<monotonic_ns>~<seq>~xxxx…``.
Subscribers find it with ``find`` instead of decoding the JSON of every
event, because a Python client's per-frame cost is what limits the benchmark.
``"~`` (the opening quote of the text value, then the stamp) marks it in the
JSON of every server this benchmark speaks to, with or without spaces.
"""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, AnyStr

MARK = '"~'
MARK_B = MARK.encode()
JOIN_B = b'"event":"join"'
NONE_YET = 2**63 - 1


def stamp_text(seq: int, payload_bytes: int) -> str:
    head = f"~{time.monotonic_ns()}~{seq}~"
    return head + "x" * max(0, payload_bytes - len(head))


def parse_stamp(data: AnyStr, start: int, tilde: AnyStr) -> tuple[int, int, int]:
    """``(send_ns, seq, end)`` of the stamp whose digits begin at ``data[start]``."""
    j = data.find(tilde, start)
    k = data.find(tilde, j + 1)
    return int(data[start:j]), int(data[j + 1 : k]), k


class Latencies:
    """Every delivery's latency and receive time; per message the first and last, in ns."""

    __slots__ = ("all", "first", "last", "received_at")

    def __init__(self, total: int) -> None:
        self.all: array[int] = array("q")
        self.received_at: array[int] = array("q")
        self.first: array[int] = array("q", [NONE_YET]) * total
        self.last: array[int] = array("q", [-1]) * total

    def add(self, seq: int, value: int, now: int) -> None:
        self.all.append(value)
        self.received_at.append(now)
        if value < self.first[seq]:
            self.first[seq] = value
        if value > self.last[seq]:
            self.last[seq] = value

    def received_by(self, deadline_ns: int) -> int:
        """How many deliveries arrived at or before ``deadline_ns``."""
        return sum(1 for t in self.received_at if t <= deadline_ns)


@dataclass
class Subscription:
    user: str
    seen: bytearray  # one byte per seq of the run: 1 once received
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0
    duplicates: int = 0
    unknown: int = 0
    last_ns: int = 0
    closed: str | None = None  # why the stream ended before we closed it

    def scan(self, data: AnyStr, mark: AnyStr, tilde: AnyStr, now: int, lat: Latencies) -> None:
        """Record every stamped message in ``data`` (one frame, SSE block or poll answer)."""
        i = data.find(mark)
        seen = self.seen
        while i >= 0:
            send_ns, seq, end = parse_stamp(data, i + len(mark), tilde)
            if not 0 <= seq < len(seen):
                self.unknown += 1
            elif seen[seq]:
                self.duplicates += 1
            else:
                seen[seq] = 1
                self.received += 1
                lat.add(seq, now - send_ns, now)
                self.last_ns = now
            i = data.find(mark, end)

    def check_join(self, payload: str | bytes) -> None:
        """Ready once our own presence ``join`` arrives: we are live in the room."""
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if (
            isinstance(event, dict)
            and event.get("type") == "presence"
            and event.get("event") == "join"
            and event.get("user") == self.user
        ):
            self.ready.set()

    def check_sse_joins(self, block: bytes) -> None:
        """:meth:`check_join` for the presence events of a block of SSE text."""
        for event in block.split(b"\n\n"):
            if b"event: presence" not in event:
                continue
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    self.check_join(line[5:])

    def report(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "ready": self.ready.is_set(),
            "received": self.received,
            "duplicates": self.duplicates,
            "unknown": self.unknown,
            "closed": self.closed,
        }
