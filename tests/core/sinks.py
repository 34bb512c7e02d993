"""An in-memory Sink: what a transport would have written, as events."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from realtime.core.protocol import Event
from realtime.core.room import CloseReason


class LineWire:
    def encode(self, event: Event) -> bytes:
        return event.json.encode() + b"\n"


WIRE = LineWire()


class MemorySink:
    """Records writes; ``unsent`` plays the bytes a slow socket still holds."""

    wire = WIRE

    def __init__(self, unsent: int = 0) -> None:
        self.writes: list[bytes] = []
        self.closed: CloseReason | None = None
        self.detail = ""
        self.unsent = unsent
        self.gone = False
        self.writer = self
        self.kernel_buffer = 0
        self.descriptor = -1

    def write(self, data: bytes) -> None:
        if self.gone:
            raise RuntimeError("the handler is closed")  # as uvloop says it
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return self.gone

    def watch_unsent(self, on_change: Callable[[bool], None]) -> bool:
        return self.unsent > 0

    def close(self, reason: CloseReason, detail: str = "") -> None:
        assert self.closed is None, "a sink is closed once"
        self.closed = reason
        self.detail = detail

    async def refuse(self, exc: Exception) -> None:
        raise AssertionError(f"refused: {exc}")

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for data in self.writes for line in data.splitlines()]

    def ids(self) -> list[str]:
        return [e["id"] for e in self.events() if e["type"] == "message"]
