"""Publishing through a Redis failover, as the cluster and Sentinel tests do it.

Two app instances share a room; a WebSocket on each and an SSE stream listen
while a publisher POSTs through both instances in turn. The master holding
the room is killed with SIGKILL mid-stream; ``recover`` waits for the
failover and starts the killed server again (as a supervisor would), and
publishing goes on until enough messages are acknowledged after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient

from realtime.core.protocol import parse_id

from .helpers import SseReader, post, ws_json, ws_until

Client = TestClient[Any, Any]


@dataclass
class Outcome:
    acked: list[str] = field(default_factory=list)  # ids answered 201, in order of answer
    refused: int = 0
    resumed_after: float = 0.0  # seconds from the kill to the first 201 after it
    received: dict[str, list[str]] = field(default_factory=dict)  # client -> message ids


async def publish_through_failover(
    a: Client,
    b: Client,
    room: str,
    kill: Callable[[], None],
    recover: Callable[[], None],
    *,
    after: int = 30,
) -> Outcome:
    out = Outcome()
    live_a = await a.ws_connect(f"/rooms/{room}/ws?user=wa")
    live_b = await b.ws_connect(f"/rooms/{room}/ws?user=wb")
    sse = SseReader(await b.get(f"/rooms/{room}/events?user=sb"))
    await ws_until(live_a, "presence")
    await ws_until(live_b, "presence")
    await sse.until("presence")
    killed_at = 0.0
    stop = asyncio.Event()
    enough = asyncio.Event()
    started = asyncio.Event()  # 20 messages acknowledged before the kill

    async def publisher() -> None:
        i = 0
        while not stop.is_set():
            client = (a, b)[i % 2]
            resp = await client.post(
                f"/rooms/{room}/messages", json={"text": f"m{i}", "user": "p", "client_id": f"c{i}"}
            )
            if resp.status == 201:
                out.acked.append((await resp.json())["id"])
                if len(out.acked) >= 20:
                    started.set()
                if killed_at and not out.resumed_after:
                    out.resumed_after = time.monotonic() - killed_at
                if out.resumed_after and len(out.acked) >= acked_at_kill + after:
                    enough.set()
            else:
                assert resp.status == 503, await resp.text()
                out.refused += 1
            i += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(publisher())
    try:
        async with asyncio.timeout(10):
            await started.wait()
        acked_at_kill = len(out.acked)
        killed_at = time.monotonic()
        kill()
        await asyncio.to_thread(recover)
        async with asyncio.timeout(30):
            await enough.wait()
    finally:
        stop.set()
        await task
    final = await post(a, room, "final")
    out.acked.append(final["id"])
    clients: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "ws-a": lambda: ws_json(live_a, timeout=20),
        "ws-b": lambda: ws_json(live_b, timeout=20),
        "sse-b": lambda: _sse_next(sse),
    }
    for name, next_event in clients.items():
        got: list[str] = []
        async with asyncio.timeout(30):
            while not got or got[-1] != final["id"]:
                data = await next_event()
                if data["type"] == "message":
                    got.append(data["id"])
        out.received[name] = got
    await live_a.close()
    await live_b.close()
    sse.resp.close()
    # A client resuming from the first id, on the other instance.
    async with b.ws_connect(f"/rooms/{room}/ws?user=re&since={out.acked[0]}") as ws:
        got = []
        async with asyncio.timeout(20):
            while not got or got[-1] != final["id"]:
                data = await ws_json(ws)
                assert data["type"] != "gap", data
                if data["type"] == "message":
                    got.append(data["id"])
        out.received["resumed"] = got
    return out


async def _sse_next(reader: SseReader) -> dict[str, Any]:
    return (await reader.next(timeout=20)).data


def assert_every_ack_delivered_once_in_order(out: Outcome) -> None:
    first = out.acked[0]
    for name, got in out.received.items():
        assert len(got) == len(set(got)), f"{name} got duplicates"
        assert got == sorted(got, key=parse_id), f"{name} got messages out of order"
        expected = set(out.acked) - ({first} if name == "resumed" else set())
        missing = expected - set(got)
        assert not missing, f"{name} missed {len(missing)} acknowledged messages"
