"""Reconnect storm: nothing acknowledged is lost, nothing arrives twice.

While a publisher sends at a steady rate (half by POST, half over a
WebSocket), subscribers on both transports are dropped at random, cleanly or
abruptly (a TCP reset with no close handshake), and come back with their last
id: WebSocket with ``?since=``, SSE with the ``Last-Event-ID`` header. At the
end every subscriber must hold every message of the run exactly once, in id
order, and the history must hold exactly what the publisher was acknowledged.

``REALTIME_STRESS=1`` (``make stress``) runs a bigger storm; without it the
small one runs as part of ``make test``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from benchmarks.rawclient import EventParser

from .conftest import MakeClient

ROOM = "storm"
END = "END-OF-RUN"


@dataclass(frozen=True)
class Size:
    clients: int
    seconds: float
    rate: float  # messages per second, POSTs and WebSocket sends together
    lifetime: tuple[float, float]  # seconds a subscriber connection lives


SMALL = Size(clients=100, seconds=3.0, rate=150.0, lifetime=(0.4, 2.0))
BIG = Size(clients=400, seconds=10.0, rate=150.0, lifetime=(2.0, 8.0))
SIZE = BIG if os.environ.get("REALTIME_STRESS") == "1" else SMALL


def abort(transport: asyncio.BaseTransport | None) -> None:
    """Drop a connection the rude way: RST, no close frame, no FIN."""
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@dataclass
class StormClient:
    name: str
    transport: str  # "ws" or "sse"
    rng: random.Random
    received: list[int] = field(default_factory=list)
    connects: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    done: bool = False

    @property
    def last(self) -> str:
        return str(self.received[-1]) if self.received else "0"

    def take(self, msg_id: str, text: str | None) -> None:
        n = int(msg_id)
        if self.received and n <= self.received[-1]:
            self.problems.append(f"id {n} after {self.received[-1]}")
        self.received.append(n)
        if text == END:
            self.done = True

    async def run(self, http: aiohttp.ClientSession, base: str) -> None:
        while not self.done:
            lifetime = self.rng.uniform(*SIZE.lifetime)
            mode = self.rng.choice(("clean", "abort"))
            self.connects += 1
            try:
                async with asyncio.timeout(lifetime):
                    if self.transport == "ws":
                        await self._ws(http, base, mode)
                    else:
                        await self._sse(http, base, mode)
            except TimeoutError:
                pass
            if not self.done:
                await asyncio.sleep(self.rng.uniform(0.0, 0.05))

    async def _ws(self, http: aiohttp.ClientSession, base: str, mode: str) -> None:
        url = f"{base}/rooms/{ROOM}/ws?user={self.name}&since={self.last}"
        ws = await http.ws_connect(url, autoclose=False)
        try:
            while not self.done:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    self.drops[f"server-{msg.type.name}-{ws.close_code}"] += 1
                    return
                raw: str = msg.data
                if raw.startswith('{"type":"presence"'):
                    continue
                data = json.loads(raw)
                if data["type"] != "message":
                    self.problems.append(f"unexpected {data['type']}: {raw[:200]}")
                    continue
                self.take(data["id"], data["text"])
        finally:
            if self.done:
                await ws.close()
            elif mode == "clean":
                self.drops["ws-clean"] += 1
                await ws.close()
            else:
                self.drops["ws-abort"] += 1
                abort(ws._conn.transport if ws._conn else None)  # type: ignore[attr-defined]
                await ws.close()

    async def _sse(self, http: aiohttp.ClientSession, base: str, mode: str) -> None:
        # The first connect names its start in the URL, every later one in
        # Last-Event-ID (which the server prefers), as EventSource does.
        url = f"{base}/rooms/{ROOM}/events?user={self.name}"
        headers = {"Accept": "text/event-stream"}
        if self.connects == 1:
            url += "&since=0"
        else:
            headers["Last-Event-ID"] = self.last
        resp = await http.get(url, headers=headers)
        try:
            if resp.status != 200:
                self.problems.append(f"SSE connect answered {resp.status}")
                return
            parser = EventParser()
            while not self.done:
                line = await resp.content.readline()
                if line == b"":
                    self.drops["server-ended"] += 1
                    return
                ev = parser.line(line.decode())
                if ev is None or ev.event == "presence":
                    continue
                if ev.event != "message" or ev.id is None:
                    self.problems.append(f"unexpected {ev.event}: {ev.data[:200]!r}")
                    continue
                data = json.loads(ev.data)
                if data["id"] != ev.id:
                    self.problems.append(f"SSE id {ev.id} with data id {data['id']}")
                self.take(ev.id, data["text"])
        except aiohttp.ClientPayloadError:
            self.drops["server-reset"] += 1
        finally:
            if self.done:
                resp.close()
            elif mode == "clean":
                self.drops["sse-clean"] += 1
                resp.close()
            else:
                self.drops["sse-abort"] += 1
                abort(resp.connection.transport if resp.connection else None)
                resp.close()


@dataclass
class Publisher:
    """Sends at a steady rate, alternating POST and WebSocket sends.

    A POST is acknowledged by its 201. A WebSocket send is acknowledged by
    its own message coming back (matched by ``client_id``). The publisher's
    own socket is a subscriber too and may itself be dropped in the storm; it
    resumes with ``since`` so every stored send still comes back. A send
    written to a socket the server then dropped may never have been read:
    it is "in doubt", and only such a send may end up not stored.
    """

    acked: dict[str, int] = field(default_factory=dict)  # client_id -> id
    refused: list[str] = field(default_factory=list)
    in_doubt: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)
    drops: int = 0
    seen: int = 0  # the newest id this publisher's socket has received
    ws: aiohttp.ClientWebSocketResponse | None = None

    async def post(self, http: aiohttp.ClientSession, base: str, cid: str, text: str) -> None:
        self.sent.add(cid)
        body = {"text": text, "user": "poster", "client_id": cid}
        async with http.post(f"{base}/rooms/{ROOM}/messages", json=body) as resp:
            if resp.status != 201:
                self.refused.append(f"POST {cid}: {resp.status} {await resp.text()}")
                return
            self.acked[cid] = int((await resp.json())["id"])

    async def read_own(self, http: aiohttp.ClientSession, base: str, end: asyncio.Event) -> None:
        while True:
            url = f"{base}/rooms/{ROOM}/ws?user=wsposter&since={self.seen}"
            self.ws = ws = await http.ws_connect(url)
            async for msg in ws:
                raw: str = msg.data
                if raw.startswith('{"type":"presence"'):
                    continue
                data = json.loads(raw)
                if data["type"] != "message":
                    self.refused.append(f"WS send: {raw[:200]}")
                    continue
                self.seen = int(data["id"])
                self.acked[data["client_id"]] = self.seen
                if data["text"] == END:
                    end.set()
                    await ws.close()
                    return
            self.drops += 1
            self.in_doubt |= {c for c in self.sent if c.startswith("w") and c not in self.acked}

    async def run(self, http: aiohttp.ClientSession, base: str) -> int:
        """Publish for SIZE.seconds at SIZE.rate; return how many were sent."""
        end = asyncio.Event()
        reader = asyncio.create_task(self.read_own(http, base, end))
        posts: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        total = int(SIZE.seconds * SIZE.rate)
        start = loop.time()
        while self.ws is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for n in range(total):
            await asyncio.sleep(max(0.0, start + n / SIZE.rate - loop.time()))
            ws = self.ws
            if n % 2 and not ws.closed:
                cid = f"w{n}"
                self.sent.add(cid)
                try:
                    await ws.send_json({"type": "send", "text": f"m{n}", "client_id": cid})
                except ConnectionError:
                    self.in_doubt.add(cid)
            else:
                task = asyncio.create_task(self.post(http, base, f"p{n}", f"m{n}"))
                posts.add(task)
                task.add_done_callback(posts.discard)
        await asyncio.gather(*posts)
        # A WebSocket's sends are stored one after another, so they may still
        # be under way: the end marker goes only after each came back (or was
        # put in doubt by a drop). Once the publisher's own socket has seen
        # the marker, every stored send has come back to it.
        async with asyncio.timeout(15):
            while self.sent - set(self.acked) - self.in_doubt:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await self.post(http, base, "end", END)
        await end.wait()
        await reader
        return len(self.sent)


# SQLite (the default store) reads history off the event loop, so live
# messages arrive while a resuming subscriber is still syncing; the memory
# store answers at once. Both paths must hand over without loss or repeat.
@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_reconnect_storm_loses_nothing_and_duplicates_nothing(
    make_client: MakeClient, store: str, tmp_path: Path
) -> None:
    expected = int(SIZE.seconds * SIZE.rate) + 1
    client = await make_client(
        store="memory" if store == "memory" else f"sqlite:{tmp_path / 'storm.db'}",
        max_connections_per_ip=SIZE.clients + 50,
        history_size=max(1000, 2 * expected),
        heartbeat=5.0,
    )
    base = str(client.make_url("")).rstrip("/")
    rng = random.Random(os.environ.get("REALTIME_STORM_SEED", "storm"))
    subs = [
        StormClient(f"s{i}", "ws" if i % 2 == 0 else "sse", random.Random(rng.random()))
        for i in range(SIZE.clients)
    ]
    publisher = Publisher()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        tasks = [asyncio.create_task(s.run(http, base)) for s in subs]
        try:
            async with asyncio.timeout(SIZE.seconds * 10 + 20):
                await asyncio.sleep(0.3)  # most subscribers are connected before the first send
                sent = await publisher.run(http, base)
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        resp = await http.get(f"{base}/rooms/{ROOM}/messages?since=0&limit={2 * expected}")
        history = await resp.json()
        async with asyncio.timeout(5):  # every subscriber leaves once it is closed
            while True:
                rooms = await (await http.get(f"{base}/rooms")).json()
                if all(r["total"] == 0 for r in rooms["rooms"]):
                    break
                await asyncio.sleep(0.05)

    assert publisher.refused == []
    assert not history["gap"]
    ids = [int(m["id"]) for m in history["messages"]]
    # The history is exactly what was acknowledged: each send once, no extra;
    # only a send whose socket the server dropped under it may be missing.
    assert ids == list(range(1, len(ids) + 1))
    stored = Counter(m["client_id"] for m in history["messages"])
    assert set(stored.values()) == {1}
    assert {m["client_id"]: int(m["id"]) for m in history["messages"]} == publisher.acked
    assert publisher.sent - set(publisher.acked) <= publisher.in_doubt
    assert len(ids) >= 0.95 * sent

    for s in subs:
        assert s.problems == [], (s.name, s.problems[:5])
        assert s.received == ids, (
            s.name,
            s.transport,
            f"missing {sorted(set(ids) - set(s.received))[:10]}",
            f"duplicates {[i for i, c in Counter(s.received).items() if c > 1][:10]}",
        )

    drops: Counter[str] = Counter()
    for s in subs:
        drops.update(s.drops)
    resumes = sum(s.connects - 1 for s in subs)
    print(
        f"\nstorm {store}: {SIZE}, {sent} sent, {len(ids)} stored, {resumes} resumes, "
        f"drops {dict(drops)}, publisher socket dropped {publisher.drops}x"
    )
    # The storm really happened: every kind of drop, many times over.
    for kind in ("ws-clean", "ws-abort", "sse-clean", "sse-abort"):
        assert drops[kind] >= SIZE.clients // 10, drops
    assert resumes >= SIZE.clients
