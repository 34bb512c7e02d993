"""HTTP long-polling: answers at once with what is stored after ``since``,
else holds for the next event; resume and gap as on the other transports."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .conftest import MakeClient
from .helpers import post


async def poll(client: Any, room: str, **query: str) -> dict[str, Any]:
    resp = await client.get(f"/rooms/{room}/poll", params=query)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    data: dict[str, Any] = await resp.json()
    return data


def ids(answer: dict[str, Any]) -> list[str]:
    return [e["id"] for e in answer["events"] if e["type"] == "message"]


async def test_a_fresh_poll_gets_the_replay_at_once(make_client: MakeClient) -> None:
    client = await make_client(replay=2)
    for i in range(3):
        await post(client, "r", f"m{i}")
    answer = await poll(client, "r", timeout="20")
    assert ids(answer) == ["2", "3"] and answer["next"] == "3" and answer["room"] == "r"
    assert answer["events"][0]["text"] == "m1"


async def test_a_poll_holds_until_the_next_message(client: Any) -> None:
    await post(client, "r", "before")
    held = asyncio.ensure_future(poll(client, "r", since="1", timeout="20"))
    await asyncio.sleep(0.3)
    assert not held.done()
    rooms = (await (await client.get("/rooms")).json())["rooms"]
    assert [r["total"] for r in rooms if r["room"] == "r"] == [0]  # not a presence member
    started = time.monotonic()
    sent = await post(client, "r", "hello")
    answer = await asyncio.wait_for(held, 5)
    assert time.monotonic() - started < 2
    assert ids(answer) == [sent["id"]] and answer["next"] == sent["id"]


async def test_a_poll_that_times_out_answers_empty_and_keeps_the_cursor(client: Any) -> None:
    await post(client, "r", "old")
    started = time.monotonic()
    answer = await poll(client, "r", since="1", timeout="0.3")
    assert 0.25 < time.monotonic() - started < 3
    assert answer["events"] == [] and answer["next"] == "1"


async def test_following_next_gets_every_message_once_in_order(client: Any) -> None:
    async def publisher() -> None:
        for i in range(60):
            await post(client, "r", f"m{i}")
            if i % 7 == 0:
                await asyncio.sleep(0.01)

    got: list[str] = []
    task = asyncio.ensure_future(publisher())
    cursor = "0"
    async with asyncio.timeout(20):
        while len(got) < 60:
            answer = await poll(client, "r", since=cursor, timeout="5")
            got += ids(answer)
            cursor = answer["next"]
    await task
    assert got == [str(i) for i in range(1, 61)]


async def test_a_resume_older_than_the_history_says_gap(make_client: MakeClient) -> None:
    client = await make_client(history_size=3, replay=3)
    for i in range(6):
        await post(client, "r", f"m{i}")
    answer = await poll(client, "r", since="1")
    kinds = [e["type"] for e in answer["events"]]
    assert kinds == ["gap", "message", "message", "message"]
    assert answer["events"][0]["first_id"] == "4" and answer["next"] == "6"


async def test_bad_timeout_and_bad_since_are_clear_errors(client: Any) -> None:
    for value in ("-1", "61", "nan", "soon"):
        resp = await client.get(f"/rooms/r/poll?timeout={value}")
        assert resp.status == 400 and (await resp.json())["code"] == "bad_timeout"
    resp = await client.get("/rooms/r/poll?since=abc")
    assert resp.status == 400 and (await resp.json())["code"] == "bad_id"
    resp = await client.get("/rooms/bad%20room/poll")
    assert resp.status == 400 and (await resp.json())["code"] == "bad_room"


async def test_a_held_poll_answers_when_the_server_shuts_down(client: Any) -> None:
    held = asyncio.ensure_future(poll(client, "r", since="0", timeout="30"))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await client.server.close()
    answer = await asyncio.wait_for(held, 5)
    assert answer["events"] == [] and time.monotonic() - started < 5
