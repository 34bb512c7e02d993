"""The reconnect loop of ``realtime.client``: when it comes back, how soon,
when it gives up, and a server killed and restarted mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from realtime.client import (
    Backoff,
    Client,
    ClientGaveUp,
    Disconnected,
    Message,
    Options,
    Presence,
    State,
    Subscription,
)
from realtime.core.room import CloseReason
from realtime.policy import tokens
from realtime.workers import free_port

from .conftest import MakeClient
from .helpers import post, realtime_process
from .test_client_subscription import ALL, FAST, STREAMS, base_url, cut, first_of, messages, ready
from .test_main import wait_healthy

SECRET = "k" * 32


@pytest.mark.parametrize("transport", ALL)
async def test_gives_up_after_the_deadline_without_a_connection(transport: str) -> None:
    # A port bound but not listening: connections are refused, and no other
    # process can start a server on it while the test runs.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{taken.getsockname()[1]}"
        options = Options(backoff=Backoff(initial=0.05, cap=0.2), give_up_after=1.0)
        async with Client(url, options=options) as client, client.subscribe("r", transport) as sub:
            with pytest.raises(ClientGaveUp) as gave_up:
                await anext(sub)
    assert gave_up.value.after == 1.0 and "connect" in gave_up.value.last_error.lower()
    assert sub.state is State.CLOSED and sub.reconnects == 0


@pytest.mark.parametrize("transport", ALL)
async def test_a_server_that_accepts_but_never_answers_counts_as_down(transport: str) -> None:
    held: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepted, read, never answered

    silent = await asyncio.start_server(mute, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}"
    options = Options(backoff=Backoff(initial=0.05, cap=0.2), give_up_after=1.5, idle_timeout=0.5)
    try:
        async with Client(url, options=options) as client, client.subscribe("r", transport) as sub:
            with pytest.raises(ClientGaveUp):
                await anext(sub)
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert len(held) >= 2  # it tried again before giving up


async def test_slow_consumer_close_resumes_at_once(make_client: MakeClient) -> None:
    """WebSocket close 1013: no backoff (here a minute), resume by id."""
    server = await make_client()
    slow = Options(backoff=Backoff(initial=60.0, cap=60.0), give_up_after=None)
    async with (
        Client(base_url(server), options=slow) as client,
        client.subscribe("r", transport="ws") as sub,
    ):
        await first_of(sub, Presence)
        await post(server, "r", "before")
        await messages(sub, 1)
        cut(server, CloseReason.SLOW)
        await post(server, "r", "after")
        async with asyncio.timeout(10):
            (after,) = await messages(sub, 1)
        assert after.text == "after" and sub.reconnects == 1


@pytest.mark.parametrize("transport", STREAMS)
async def test_shutdown_close_backs_off_then_resumes(
    make_client: MakeClient, transport: str
) -> None:
    server = await make_client()
    async with (
        Client(base_url(server), options=FAST) as client,
        client.subscribe("r", transport=transport) as sub,
    ):
        await first_of(sub, Presence)
        cut(server)
        async with asyncio.timeout(10):
            while sub.reconnects == 0:
                await asyncio.sleep(0.02)
                assert sub.state is not State.CLOSED
        assert sub.state is State.LIVE


async def test_sse_retry_from_the_server_is_kept(make_client: MakeClient) -> None:
    server = await make_client()
    async with (
        Client(base_url(server), options=FAST) as client,
        client.subscribe("r", transport="sse") as sub,
    ):
        await first_of(sub, Presence)
        assert sub.retry == 1.0  # the server's `retry: 1000`, a floor for the next wait


@pytest.mark.parametrize("transport", ALL)
async def test_expired_token_is_replaced_by_the_provider(
    make_client: MakeClient, transport: str
) -> None:
    server = await make_client(secret=SECRET, private_rooms="team-*")
    calls: list[int] = []

    async def fresh() -> str:
        calls.append(1)
        return tokens.mint(SECRET, "ana", ["team-*"], ttl=60)

    expired = tokens.mint(SECRET, "ana", ["team-*"], ttl=-10)
    async with (
        Client(base_url(server), token=expired, token_provider=fresh, options=FAST) as client,
        client.subscribe("team-a", transport=transport) as sub,
    ):
        await ready(sub)
        assert calls == [1]
        sent = await client.send("team-a", "with a fresh token")
        assert sent.user == "ana" and client.token != expired


# -- a server killed with SIGKILL mid-stream ----------------------------------


def start_server(port: int, db: Path) -> subprocess.Popen[bytes]:
    limits = ("--rate-limit", "10000/s", "--rate-burst", "10000")
    return realtime_process(port, f"sqlite:{db}", *limits, "--log-level", "WARNING")


class Publisher:
    """Sends numbered messages from two clients at once: one over its
    WebSocket subscription (a send cut by the crash is looked up in the
    history and sent again only if it was not stored), one by POST (which
    fails while the server is down). Keeps what the server acknowledged."""

    def __init__(self, over_ws: Client, by_post: Client) -> None:
        self.clients = {"w": over_ws, "p": by_post}
        self.acked: dict[str, str] = {}  # id -> text
        self.failed: list[str] = []

    async def send(self, client: Client, text: str) -> bool:
        try:
            msg = await client.send("crash", text)
        except Exception as exc:  # the server is down: not acknowledged
            self.failed.append(f"{text}: {exc!r}")
            return False
        self.acked[msg.id] = msg.text
        return True

    async def one(self, name: str, count: int) -> None:
        for i in range(count):
            if not await self.send(self.clients[name], f"{name}{i}"):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)

    async def run(self, count: int, kill_after: float, restart: Any) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(kill_after, restart.start)
        await asyncio.gather(*(self.one(name, count) for name in self.clients))
        for _ in range(100):
            if await self.send(self.clients["p"], "END"):
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the server did not come back")


async def drain(sub: Subscription) -> None:
    async for _ in sub:
        pass


async def receive_until_end(sub: Subscription) -> list[Message]:
    got: list[Message] = []
    async for event in sub:
        if isinstance(event, Message):
            got.append(event)
            if event.text == "END":
                return got
    raise AssertionError("the subscription ended")


async def test_server_killed_and_restarted_every_acknowledged_message_once(
    tmp_path: Path,
) -> None:
    port = free_port()
    db = tmp_path / "history.db"
    base = f"http://127.0.0.1:{port}"
    procs = [start_server(port, db)]
    options = Options(backoff=Backoff(initial=0.1, cap=1.0), give_up_after=60.0)

    class Restart:
        task: asyncio.Task[None] | None = None

        def start(self) -> None:
            self.task = asyncio.create_task(self.kill_and_restart())

        async def kill_and_restart(self) -> None:
            procs[-1].send_signal(signal.SIGKILL)
            await asyncio.to_thread(procs[-1].wait, 10)
            await asyncio.sleep(0.5)
            procs.append(start_server(port, db))
            await wait_healthy(base, procs[-1])

    restart = Restart()
    try:
        await wait_healthy(base, procs[0])
        async with (
            Client(base, user="listener", options=options) as listener,
            Client(base, user="publisher", options=options) as publishing,
            Client(base, user="poster", options=options) as poster,
        ):
            subs = {t: listener.subscribe("crash", transport=t) for t in ALL}
            own = publishing.subscribe("crash", transport="ws")
            async with subs["ws"], subs["sse"], subs["poll"], own:
                for sub in subs.values():
                    await ready(sub)
                await first_of(own, Presence)
                receivers = {t: asyncio.create_task(receive_until_end(s)) for t, s in subs.items()}
                drainer = asyncio.create_task(drain(own))
                publisher = Publisher(publishing, poster)
                async with asyncio.timeout(90):
                    await publisher.run(120, kill_after=0.8, restart=restart)
                    assert restart.task is not None
                    await restart.task
                    received = {t: await task for t, task in receivers.items()}
                drainer.cancel()
                reconnects = {t: s.reconnects for t, s in subs.items()}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert procs[0].returncode == -signal.SIGKILL and len(procs) == 2
    acked_ids = sorted(publisher.acked, key=int)
    for transport, got in received.items():
        ids = [int(m.id) for m in got]
        texts = [m.text for m in got]
        assert ids == sorted(set(ids)), f"{transport}: out of order or repeated"
        assert len(texts) == len(set(texts)), f"{transport}: a message stored twice"
        assert set(acked_ids) <= {m.id for m in got}, f"{transport}: acknowledged lost"
        assert reconnects[transport] >= 1
    assert len(acked_ids) >= 150 and publisher.failed
    if os.environ.get("REALTIME_VERBOSE"):
        print(f"acked {len(acked_ids)}, failed {len(publisher.failed)}, reconnects {reconnects}")


# -- deliberate disconnects through the server API ------------------------------

API_KEY = "test-api-key-1"


async def disconnect(server: Any, sub: Subscription, **body: Any) -> None:
    """``POST /api/disconnect`` until ``sub`` noticed: a poll is reached only
    while one of its requests is held (and presence, which the answer counts,
    does not list polls)."""
    for _ in range(200):
        resp = await server.post("/api/disconnect", json=body, headers={"X-API-Key": API_KEY})
        assert resp.status == 200, await resp.text()
        if sub.transport != "poll":
            assert (await resp.json())["disconnected"] == 1
        for _ in range(5):
            if sub.state is not State.LIVE or sub.reconnects:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the disconnect never reached the subscription")


@pytest.mark.parametrize("transport", ALL)
async def test_a_deliberate_disconnect_is_not_retried(
    make_client: MakeClient, transport: str
) -> None:
    server = await make_client(api_key=API_KEY)
    async with (
        Client(base_url(server), user="ana", options=FAST) as client,
        client.subscribe("r", transport=transport) as sub,
    ):
        await ready(sub)
        await post(server, "r", "before")
        await messages(sub, 1)
        await disconnect(server, sub, user="ana", reason="banned")
        with pytest.raises(Disconnected) as stopped:
            await messages(sub, 1)
        assert (stopped.value.code, stopped.value.reason) == (4000, "banned")
        assert sub.state is State.CLOSED and sub.reconnects == 0


@pytest.mark.parametrize("transport", ALL)
async def test_a_disconnect_with_reconnect_resumes(make_client: MakeClient, transport: str) -> None:
    server = await make_client(api_key=API_KEY)
    async with (
        Client(base_url(server), user="ana", options=FAST) as client,
        client.subscribe("r", transport=transport) as sub,
    ):
        await ready(sub)
        await disconnect(server, sub, user="ana", reconnect=True)
        await post(server, "r", "after")
        (after,) = await messages(sub, 1)
        assert after.text == "after" and sub.reconnects == 1


@pytest.mark.parametrize("transport", ALL)
async def test_a_token_expiring_mid_stream_is_renewed_without_gap(
    make_client: MakeClient, transport: str
) -> None:
    server = await make_client(secret=SECRET, private_rooms="team-*")
    calls: list[int] = []

    def fresh() -> str:
        calls.append(1)
        return tokens.mint(SECRET, "ana", ["team-*"], ttl=3600)

    short = tokens.mint(SECRET, "ana", ["team-*"], ttl=2)
    async with (
        Client(base_url(server), token=short, token_provider=fresh, options=FAST) as client,
        client.subscribe("team-a", transport=transport) as sub,
    ):
        await ready(sub)
        ids = []
        for i in range(30):  # about three seconds, across the token's exp
            sent = await client.send("team-a", f"m{i}")
            ids.append(sent.id)
            await asyncio.sleep(0.1)
        got = await messages(sub, 30)
        assert [m.id for m in got] == ids
        assert calls == [1] and sub.reconnects == 1
