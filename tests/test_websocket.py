"""The WebSocket transport over real sockets: join, send, resume, bad input."""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from benchmarks import rawclient
from realtime import Settings

from .conftest import MakeClient
from .helpers import post, raw_ws, ws_json, ws_messages, ws_until


async def test_send_and_receive_own_message_with_client_id(client: Any) -> None:
    async with client.ws_connect("/rooms/lobby/ws?user=ana") as ws:
        presence = await ws_until(ws, "presence")
        assert presence["event"] == "join"
        assert presence["members"] == [{"user": "ana", "transport": "ws"}]
        await ws.send_json({"type": "send", "text": "hi", "client_id": "c-9"})
        msg = await ws_until(ws, "message")
        assert msg["user"] == "ana" and msg["text"] == "hi" and msg["client_id"] == "c-9"
        assert msg["room"] == "lobby" and msg["id"] == "1" and isinstance(msg["ts"], float)
        await ws.send_json({"text": "plain"})
        assert (await ws_until(ws, "message"))["text"] == "plain"


async def test_lobby_alias_is_the_same_room(client: Any) -> None:
    async with client.ws_connect("/ws?user=a") as ws:
        await post(client, "lobby", "via room url")
        assert (await ws_until(ws, "message"))["text"] == "via room url"


async def test_fresh_join_gets_last_replay_messages_in_order(make_client: MakeClient) -> None:
    client = await make_client(replay=3)
    for i in range(5):
        await post(client, "r", f"m{i}")
    async with client.ws_connect("/rooms/r/ws?user=late") as ws:
        got = await ws_messages(ws, 3)
        assert [m["text"] for m in got] == ["m2", "m3", "m4"]
        await post(client, "r", "live")
        assert (await ws_until(ws, "message"))["text"] == "live"


async def test_resume_while_publishing_has_no_gap_and_no_duplicate(client: Any) -> None:
    for i in range(10):
        await post(client, "r", f"m{i}")
    stop = asyncio.Event()

    async def publisher() -> None:
        i = 10
        while not stop.is_set() and i < 200:
            await post(client, "r", f"m{i}")
            i += 1
        stop.set()

    task = asyncio.create_task(publisher())
    await asyncio.sleep(0.05)
    async with client.ws_connect("/rooms/r/ws?user=re&since=4") as ws:
        await stop.wait()
        await task
        got = await ws_messages(ws, 200 - 5, timeout=10)
    ids = [int(m["id"]) for m in got]
    assert ids == list(range(5, 201)) or ids == list(range(5, 5 + len(ids)))
    assert len(ids) == len(set(ids)) == 195


async def test_resume_older_than_history_says_gap(make_client: MakeClient) -> None:
    client = await make_client(history_size=5, replay=5)
    for i in range(12):
        await post(client, "r", f"m{i}")
    async with client.ws_connect("/rooms/r/ws?since=2") as ws:
        gap = await ws_json(ws)
        assert gap["type"] == "gap" and gap["since"] == "2" and gap["first_id"] == "8"
        got = await ws_messages(ws, 5)
        assert [m["id"] for m in got] == ["8", "9", "10", "11", "12"]


async def test_rooms_are_isolated(client: Any) -> None:
    async with client.ws_connect("/rooms/a/ws") as wa, client.ws_connect("/rooms/b/ws") as wb:
        await post(client, "a", "for a")
        await post(client, "b", "for b")
        assert (await ws_until(wa, "message"))["text"] == "for a"
        assert (await ws_until(wb, "message"))["text"] == "for b"
        await post(client, "a", "again a")
        assert (await ws_until(wa, "message"))["text"] == "again a"
        # b saw nothing of a: its next message is b's own
        await post(client, "b", "again b")
        assert (await ws_until(wb, "message"))["text"] == "again b"


async def test_presence_join_and_leave(client: Any) -> None:
    async with client.ws_connect("/rooms/p/ws?user=ana") as ana:
        await ws_until(ana, "presence")
        async with client.ws_connect("/rooms/p/ws?user=bo"):
            joined = await ws_until(ana, "presence")
            assert joined["event"] == "join" and joined["user"] == "bo"
            assert sorted(m["user"] for m in joined["members"]) == ["ana", "bo"]
            rooms = await (await client.get("/rooms")).json()
            assert {"room": "p", "members": {"ws": 2, "sse": 0}, "total": 2} in rooms["rooms"]
        left = await ws_until(ana, "presence")
        assert left["event"] == "leave" and left["user"] == "bo"
        assert left["members"] == [{"user": "ana", "transport": "ws"}]


async def test_bad_frames_get_errors_and_keep_the_connection(make_client: MakeClient) -> None:
    client = await make_client(max_message_bytes=100)
    async with client.ws_connect("/rooms/r/ws") as ws:
        await ws_until(ws, "presence")
        cases = [
            ("not json", "bad_json"),
            ('{"text": 1}', "bad_message"),
            ('{"text": ""}', "empty_text"),
            (json.dumps({"text": "x" * 101}), "too_long"),
        ]
        for raw, code in cases:
            await ws.send_str(raw)
            err = await ws_json(ws)
            assert err["type"] == "error" and err["code"] == code and err["detail"]
        await ws.send_bytes(b"\x00\x01")
        assert (await ws_json(ws))["code"] == "unsupported_data"
        await ws.send_json({"text": "still here"})
        msg = await ws_until(ws, "message")
        assert msg["text"] == "still here" and msg["id"] == "1"  # nothing half-stored
    history = await (await client.get("/rooms/r/messages")).json()
    assert [m["text"] for m in history["messages"]] == ["still here"]


async def test_oversized_frame_closes_1009(make_client: MakeClient) -> None:
    client = await make_client(max_message_bytes=100)
    async with client.ws_connect("/rooms/r/ws") as ws:
        await ws.send_str(json.dumps({"text": "x" * 5000}))
        async with asyncio.timeout(5):
            while True:
                msg = await ws.receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                    break
        assert ws.close_code == 1009
    history = await (await client.get("/rooms/r/messages")).json()
    assert history["messages"] == []


async def test_bad_room_or_user_is_400_before_upgrade(client: Any) -> None:
    for url in [
        "/rooms/bad%20room/ws",
        "/rooms/" + "x" * 65 + "/ws",
        "/rooms/r/ws?user=" + "u" * 40,
    ]:
        try:
            await client.ws_connect(url)
        except aiohttp.WSServerHandshakeError as err:
            assert err.status == 400
        else:
            raise AssertionError(f"{url} was upgraded")
    resp = await client.get("/rooms/bad%20room/ws")
    assert resp.status == 400 and (await resp.json())["code"] == "bad_room"


async def test_plain_get_on_ws_url_is_400(client: Any) -> None:
    resp = await client.get("/rooms/r/ws")
    assert resp.status == 400
    assert (await resp.json())["code"] == "not_websocket"


async def test_echo_replies_to_sender_only(client: Any) -> None:
    async with client.ws_connect("/ws/echo") as a, client.ws_connect("/ws/echo") as b:
        await a.send_str("hello")
        assert (await a.receive(timeout=5)).data == "ECHO: hello"
        await b.send_str("x")
        assert (await b.receive(timeout=5)).data == "ECHO: x"
        await a.send_str("again")
        assert (await a.receive(timeout=5)).data == "ECHO: again"


async def test_server_shutdown_closes_sockets_1001(make_client: MakeClient) -> None:
    client = await make_client()
    ws = await client.ws_connect("/rooms/r/ws")
    echo = await client.ws_connect("/ws/echo")
    await ws_until(ws, "presence")
    await client.server.close()
    for sock in (ws, echo):
        async with asyncio.timeout(5):
            while (await sock.receive()).type not in (WSMsgType.CLOSE, WSMsgType.CLOSED):
                pass
        assert sock.close_code == 1001


async def test_large_rooms_stop_broadcasting_joins(make_client: MakeClient) -> None:
    client = await make_client(presence_limit=2)
    async with client.ws_connect("/rooms/big/ws?user=a") as a:
        await ws_until(a, "presence")
        async with client.ws_connect("/rooms/big/ws?user=b"):
            assert (await ws_until(a, "presence"))["count"] == 2
            async with client.ws_connect("/rooms/big/ws?user=c") as c:
                snapshot = await ws_until(c, "presence")
                assert snapshot["count"] == 3 and len(snapshot["members"]) == 2
                await post(client, "big", "after c joined")
                # a saw no join for c: its next event is the message
                assert (await ws_json(a))["type"] == "message"


async def test_resume_from_an_id_the_room_never_reached_gets_new_messages(
    client: Any,
) -> None:
    for i in range(3):
        await post(client, "reset", f"m{i}")
    # e.g. a browser that resumes after the server lost its throwaway history
    async with client.ws_connect("/rooms/reset/ws?since=100") as ws:
        assert (await ws_json(ws))["type"] == "gap"
        assert [m["id"] for m in await ws_messages(ws, 3)] == ["1", "2", "3"]
        await post(client, "reset", "new")
        assert (await ws_until(ws, "message"))["id"] == "4"


async def test_a_fast_sender_is_pipelined_and_keeps_its_order(make_client: MakeClient) -> None:
    """Frames sent back to back are stored in frame order (the next is read
    while the previous commits), and every one comes back once."""
    client = await make_client(store=f"sqlite:{tempfile.mkdtemp()}/h.db", replay=0)
    async with client.ws_connect("/rooms/pipe/ws?user=fast") as ws:
        await ws_until(ws, "presence")
        for i in range(300):
            await ws.send_json({"text": f"m{i}", "client_id": f"c{i}"})
        got = await ws_messages(ws, 300, timeout=15)
    assert [m["client_id"] for m in got] == [f"c{i}" for i in range(300)]
    assert [int(m["id"]) for m in got] == list(range(1, 301))


# -- RFC 6455 at the edge ----------------------------------------------------


@pytest.mark.parametrize("version", ["8", "7", "14"])
async def test_a_version_other_than_13_gets_426_naming_13(client: Any, version: str) -> None:
    raw = await raw_ws(client, "/rooms/r/ws", version=version)
    try:
        assert raw.status == 426
        assert raw.headers["sec-websocket-version"] == "13"
        assert "upgrade" not in raw.headers.get("connection", "").lower()
    finally:
        raw.close()
    assert (await (await client.get("/rooms")).json())["rooms"] == []


async def test_an_unmasked_client_frame_is_closed_1002_and_not_stored(client: Any) -> None:
    raw = await raw_ws(client, "/rooms/r/ws?user=bare")
    assert raw.status == 101
    try:
        raw.writer.write(rawclient.encode_frame(rawclient.TEXT, b'{"text":"unmasked"}'))
        assert await raw.close_code() == 1002
    finally:
        raw.close()
    history = await (await client.get("/rooms/r/messages?since=0")).json()
    assert history["messages"] == []


@pytest.mark.parametrize(("sent", "answer"), [(1000, 1000), (1001, 1000), (1006, 1002)])
async def test_a_client_close_is_answered(client: Any, sent: int, answer: int) -> None:
    """1006 (like 1005 and 1015) must never be sent on the wire: a peer
    that does so is answered with 1002."""
    raw = await raw_ws(client, "/rooms/r/ws?user=closer")
    assert raw.status == 101
    try:
        raw.writer.write(rawclient.client_frame(rawclient.CLOSE, rawclient.close_payload(sent)))
        assert await raw.close_code() == answer
    finally:
        raw.close()


async def test_the_log_names_the_close_code_sent(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="realtime")
    client = await make_client(max_message_bytes=64)
    async with client.ws_connect("/rooms/r/ws?user=big") as ws:
        await ws_until(ws, "presence")
        await ws.send_str("x" * (Settings(max_message_bytes=64).max_frame_bytes + 1))
        assert (await ws.receive(timeout=5)).type is WSMsgType.CLOSE
        assert ws.close_code == 1009
    async with asyncio.timeout(5):
        while not any(r.getMessage().startswith("disconnect ") for r in caplog.records):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("disconnect "))
    assert "code=1009" in line, line


async def test_an_error_answering_a_send_names_its_client_id(make_client: MakeClient) -> None:
    client = await make_client(rate_limit="1/min", rate_burst=2)  # two sends, then refused
    async with client.ws_connect("/rooms/ids/ws") as ws:
        await ws_until(ws, "presence")
        await ws.send_json({"text": " ", "client_id": "c-empty"})
        refused = await ws_until(ws, "error")
        assert refused["code"] == "empty_text" and refused["client_id"] == "c-empty"
        await ws.send_str('{"text": "ok", "client_id": "c-1"}')
        assert (await ws_until(ws, "message"))["client_id"] == "c-1"
        await ws.send_json({"text": "one too many", "client_id": "c-2"})
        limited = await ws_until(ws, "error")
        assert limited["code"] == "rate_limited" and limited["client_id"] == "c-2"
        await ws.send_str("{not json")
        assert "client_id" not in await ws_until(ws, "error")
