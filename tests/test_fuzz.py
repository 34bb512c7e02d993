"""Generated input never crashes a handler, never leaks a subscriber, and
never stores a half-valid message.

Hypothesis generates WebSocket frames (text and binary, JSON of any shape,
empty, huge, unicode and lone surrogates), POST bodies and content types,
query strings, room names and ``Last-Event-ID`` values. One real server runs
per test function; Hypothesis runs in a worker thread and hands each example
to the server's event loop, so shrinking works as usual.

What must hold after every example:
- no 500, and the server still answers;
- the history holds exactly the sends a model of the protocol accepts, in
  order, each with a valid user and text within the limits;
- once its connections are closed, no subscriber is left (``GET /rooms``
  shows no members, the hub holds no subscriber and no room).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime import Settings
from realtime.core.protocol import USER_MAX
from realtime.transports.state import HUB

from .conftest import MakeClient

MAX_TEXT = 64  # max_message_bytes for these servers: "huge" is easy to reach
MAX_FRAME = Settings(max_message_bytes=MAX_TEXT).max_frame_bytes
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
texts = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["", " ", "\n\t", "x" * MAX_TEXT, "é" * (MAX_TEXT // 2 + 1), "😀" * 16]),
    st.just("y" * (MAX_FRAME + 10)),
)
send_shaped = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.just("send"), json_values),
        "text": st.one_of(texts, json_values),
        "client_id": st.one_of(st.none(), st.text(max_size=70), json_values),
        "user": st.one_of(st.text(max_size=40), json_values),
    },
)
# JSON text a json.dumps of a Python str cannot produce: lone surrogates.
raw_json = st.sampled_from(
    [
        '{"text":"\\ud800"}',
        '{"text":"a\\udfff","client_id":"c"}',
        '{"text":"ok","client_id":"\\ud83d"}',
        '{"text": "ok", "text": ""}',
        "[]",
        "null",
        '{"text":"x"',
        "\x00",
    ]
)
ws_frames = st.one_of(
    send_shaped.map(json.dumps),
    json_values.map(json.dumps),
    texts,
    raw_json,
    st.binary(max_size=40),
)


def accepted(raw: str | bytes) -> dict[str, Any] | None:
    """The protocol, modelled: the send a frame or body must store, or None."""
    if isinstance(raw, bytes):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type", "send") != "send":
        return None
    text, cid = data.get("text"), data.get("client_id")
    if not isinstance(text, str) or text.strip() == "":
        return None
    try:
        if len(text.encode()) > MAX_TEXT:
            return None
        if cid is not None and (not isinstance(cid, str) or len(cid) > 64):
            return None
        if isinstance(cid, str):
            cid.encode()
    except UnicodeEncodeError:
        return None
    return {"text": text, "client_id": cid}


async def run_examples(check: Callable[..., Awaitable[None]], *strategies: Any) -> int:
    """Run ``check`` on this loop for each example Hypothesis draws (in a
    worker thread); return how many ran."""
    loop = asyncio.get_running_loop()
    ran = 0

    @FUZZ
    @given(st.tuples(*strategies))
    def examples(args: tuple[Any, ...]) -> None:
        nonlocal ran
        ran += 1
        asyncio.run_coroutine_threadsafe(check(*args), loop).result(timeout=30)

    await asyncio.to_thread(examples)
    return ran


async def assert_no_members(client: Any) -> None:
    """Every subscriber leaves once its connection is gone (allowing the
    leave a moment, as it runs after the handler returns)."""
    hub = client.server.app[HUB]
    async with asyncio.timeout(5):
        while True:
            data = await (await client.get("/rooms")).json()
            if all(r["total"] == 0 for r in data["rooms"]) and not list(hub.subscribers()):
                break
            await asyncio.sleep(0.01)
    assert hub.room_count() == 0


async def history(client: Any, room: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/rooms/{room}/messages?since=0&limit=1000")
    assert resp.status == 200
    messages: list[dict[str, Any]] = (await resp.json())["messages"]
    for m in messages:
        assert isinstance(m["user"], str) and 1 <= len(m["user"]) <= USER_MAX
        assert m["user"].isprintable()
        assert isinstance(m["text"], str) and m["text"].strip()
        assert len(m["text"].encode()) <= MAX_TEXT
    return messages


async def test_websocket_frames(make_client: MakeClient) -> None:
    client = await make_client(max_message_bytes=MAX_TEXT, history_size=1000)
    expected: list[dict[str, Any]] = []
    counter = iter(range(10**6))

    async def check(frames: list[str | bytes]) -> None:
        n = next(counter)
        async with client.ws_connect(f"/rooms/fz/ws?user=u{n}") as ws:
            closed_by_server = False
            for frame in frames:
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
                if len(frame) > MAX_FRAME:
                    closed_by_server = True
                    break
                ok = accepted(frame)
                if ok is not None:
                    expected.append({**ok, "user": f"u{n}"})
            marker = {"text": f"marker {n}", "client_id": f"m{n}"}
            if not closed_by_server:
                await ws.send_json(marker)
                expected.append({**marker, "user": f"u{n}"})
            # Read until the marker comes back (so every send before it was
            # handled) or until the server closes for an oversized frame.
            async with asyncio.timeout(10):
                async for msg in ws:
                    assert msg.type is aiohttp.WSMsgType.TEXT
                    data = json.loads(msg.data)
                    if data["type"] == "error":
                        assert data["code"] in (
                            "bad_json",
                            "bad_message",
                            "empty_text",
                            "too_long",
                            "unsupported_data",
                        ), data
                    if data.get("client_id") == f"m{n}":
                        break
            if closed_by_server:
                assert ws.close_code == 1009
        got = await history(client, "fz")
        assert [
            {"text": m["text"], "client_id": m.get("client_id"), "user": m["user"]} for m in got
        ] == expected
        await assert_no_members(client)

    frames = st.lists(ws_frames, min_size=1, max_size=5)
    assert await run_examples(check, frames) >= 50
    assert (await client.get("/healthz")).status == 200


content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/jsonx",
    ]
)
bodies = st.one_of(
    send_shaped.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    raw_json.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=60),
    st.just(b'{"text":"' + b"z" * (MAX_FRAME + 10) + b'"}'),
)


async def test_post_bodies_and_content_types(make_client: MakeClient) -> None:
    client = await make_client(max_message_bytes=MAX_TEXT, history_size=1000)
    expected: list[dict[str, Any]] = []

    async def check(body: bytes, ctype: str) -> None:
        resp = await client.post(
            "/rooms/fp/messages?user=q", data=body, headers={"Content-Type": ctype}
        )
        assert resp.status in (201, 400, 413, 415), (resp.status, await resp.text())
        reply = await resp.json()
        ok = None
        if ctype.split(";")[0] == "application/json" and len(body) <= MAX_FRAME:
            try:
                ok = accepted(body.decode())
            except UnicodeDecodeError:
                ok = None
        if ok is not None:
            user = json.loads(body).get("user", "q")
            if not isinstance(user, str) or len(user) > USER_MAX or not user.isprintable():
                ok = None
        if ok is None:
            assert resp.status != 201, reply
            assert reply["type"] == "error"
        else:
            assert resp.status == 201, reply
            expected.append(reply)
        assert await history(client, "fp") == expected

    assert await run_examples(check, bodies, content_types) >= 50


names = st.one_of(
    st.text(max_size=70),
    st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    st.sampled_from(["", "-1", "0", "00", "1-2", "999999999999999999999", "1-", "a b", "é"]),
)


async def test_query_strings_rooms_and_last_event_ids(make_client: MakeClient) -> None:
    client = await make_client(max_message_bytes=MAX_TEXT)
    for i in range(3):
        assert (await client.post("/rooms/q/messages", json={"text": f"m{i}"})).status == 201

    opened = {"sse": 0, "ws": 0}

    async def check(room: str, user: str, since: str, last_event_id: str) -> None:
        params = {"user": user, "since": since}
        path = f"/rooms/{quote(room, safe='')}"
        ok_header = last_event_id.isascii() and last_event_id.isprintable()
        headers = {"Last-Event-ID": last_event_id} if ok_header else {}
        resp = await client.get(path + "/events", params=params, headers=headers)
        assert resp.status in (200, 400, 404), resp.status
        if resp.status == 200:
            opened["sse"] += 1
            # Read up to the join, so the subscriber is surely registered.
            async with asyncio.timeout(5):
                while not (await resp.content.readline()).startswith(b"event: presence"):
                    pass
        resp.close()
        try:
            ws = await client.ws_connect(path + "/ws", params=params)
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status in (400, 404), exc.status
        else:
            opened["ws"] += 1
            first = json.loads((await ws.receive(timeout=5)).data)
            assert first["type"] in ("message", "presence", "gap"), first
            await ws.close()
        resp = await client.get(path + "/messages", params={"since": since, "limit": "5"})
        assert resp.status in (200, 400, 404), resp.status
        await assert_no_members(client)

    # Valid values are drawn often, so that many examples really connect.
    valid_ids = st.sampled_from(["", "1", "3", "7"])
    await check("q", "u", "", "")  # a connection is surely among the cases
    ran = await run_examples(
        check,
        st.one_of(st.just("q"), names),
        st.one_of(st.just("u"), st.text(max_size=40)),
        st.one_of(valid_ids, names),
        st.one_of(valid_ids, names),
    )
    assert ran >= 50
    assert opened["sse"] >= 3 and opened["ws"] >= 3, opened
    assert len(await history(client, "q")) == 3
