"""``python -m realtime listen`` and ``send`` as a user runs them: real
processes against a real server."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from typing import Any

from .conftest import MakeClient
from .helpers import post
from .test_client_subscription import base_url


def interruptible() -> None:
    """In the child: Ctrl-C as at a terminal. A shell starts background jobs
    with SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "realtime",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=interruptible,
    )


async def line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        raw = await proc.stdout.readline()
    assert raw, "the process ended"
    return raw.decode().rstrip("\n")


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(10):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_listen_prints_messages_as_they_arrive_and_stops_on_ctrl_c(
    make_client: MakeClient,
) -> None:
    server = await make_client()
    for transport in ("ws", "sse", "poll"):
        room = f"cli-{transport}"
        await post(server, room, "before", user="ana")
        proc = await start(
            "listen", room, "--url", base_url(server), "--transport", transport, "--user", "cli"
        )
        try:
            assert await line(proc) == "[1] ana: before"
            if transport != "poll":  # poll clients are not presence members
                assert await line(proc) == f"* cli joined ({transport}), 1 here"
            await post(server, room, "héllo", user="bo")
            assert await line(proc) == "[2] bo: héllo"
        finally:
            code, err = await stop(proc)
        assert code == 0 and "Traceback" not in err, err


async def test_listen_json_and_since(make_client: MakeClient) -> None:
    server = await make_client()
    for text in ("a", "b", "c"):
        await post(server, "r", text)
    proc = await start("listen", "r", "--url", base_url(server), "--since", "2", "--json")
    try:
        event: dict[str, Any] = json.loads(await line(proc))
        assert event["type"] == "message" and event["id"] == "3" and event["text"] == "c"
        assert json.loads(await line(proc))["type"] == "presence"
    finally:
        code, err = await stop(proc)
    assert code == 0 and "Traceback" not in err, err


async def test_send_prints_the_stored_id(make_client: MakeClient) -> None:
    server = await make_client()
    await post(server, "r", "first")
    proc = await start("send", "r", "second", "--url", base_url(server), "--user", "ana")
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode() == "2\n"
    resp = await server.get("/rooms/r/messages?since=1")
    (msg,) = (await resp.json())["messages"]
    assert (msg["user"], msg["text"]) == ("ana", "second")


async def test_a_refusal_is_one_clear_line_and_exit_1(make_client: MakeClient) -> None:
    server = await make_client(secret="s" * 32, private_rooms="team-*")
    for args in (["listen", "team-a"], ["send", "team-a", "hi"]):
        proc = await start(*args, "--url", base_url(server))
        async with asyncio.timeout(20):
            out, err = await proc.communicate()
        assert proc.returncode == 1
        assert out == b"" and "token_required" in err.decode() and "Traceback" not in err.decode()


def test_main_help_lists_the_subcommands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "realtime", "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    for command in ("token", "listen ROOM", "send ROOM TEXT"):
        assert command in out.stdout
