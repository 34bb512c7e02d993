"""Validation and encoding rules that every transport relies on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from realtime.core.protocol import (
    Event,
    Message,
    ProtocolError,
    parse_id,
    parse_send_json,
    validate_room,
    validate_since,
    validate_user,
)

from .conftest import MakeClient
from .helpers import ws_json, ws_until


@pytest.mark.parametrize("name", ["lobby", "a", "x" * 64, "team-1_b.c"])
def test_valid_room_names(name: str) -> None:
    assert validate_room(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "ü", "a/b", "a\n"])
def test_bad_room_names(name: str) -> None:
    with pytest.raises(ProtocolError) as err:
        validate_room(name)
    assert err.value.code == "bad_room"


def test_user_default_and_limits() -> None:
    assert validate_user(None).startswith("anon-")
    assert validate_user("  ").startswith("anon-")
    assert validate_user("ana") == "ana"
    assert validate_user("x" * 32) == "x" * 32
    for bad in ["x" * 33, "a\nb", "tab\t"]:
        with pytest.raises(ProtocolError):
            validate_user(bad)


def test_ids_order_numerically_and_as_stream_ids() -> None:
    assert parse_id("9") < parse_id("10")
    assert parse_id("1700-2") < parse_id("1700-10") < parse_id("1701-0")
    for bad in ["", "abc", "-1", "1-", "1-x", "1.5"]:
        with pytest.raises(ProtocolError):
            parse_id(bad)
    assert validate_since("") is None
    assert validate_since("12") == "12"


def test_send_shapes() -> None:
    draft = parse_send_json(
        '{"type":"send","text":"hi","client_id":"c-1"}', room="r", user="u", max_bytes=10
    )
    assert (draft.text, draft.client_id) == ("hi", "c-1")
    assert parse_send_json('{"text":"hi"}', room="r", user="u", max_bytes=10).text == "hi"
    cases = {
        "nope": "bad_json",
        "[1]": "bad_message",
        '{"text": 5}': "bad_message",
        '{"type":"other","text":"x"}': "bad_message",
        '{"text":"  "}': "empty_text",
        '{"text":"' + "é" * 6 + '"}': "too_long",
    }
    for raw, code in cases.items():
        with pytest.raises(ProtocolError) as err:
            parse_send_json(raw, room="r", user="u", max_bytes=10)
        assert err.value.code == code, raw


def test_event_encodes_once_per_wire() -> None:
    calls: list[str] = []

    class CountingWire:
        def encode(self, event: Event) -> bytes:
            calls.append(event.kind)
            return event.json.encode()

    wire = CountingWire()
    event = Event.message(Message("r", "1", "u", "hi", 1.0, "c"))
    assert event.encoded(wire) is event.encoded(wire)
    assert calls == ["message"]
    assert json.loads(event.json) == {
        "type": "message",
        "room": "r",
        "id": "1",
        "user": "u",
        "text": "hi",
        "ts": 1.0,
        "client_id": "c",
    }


# -- client JSON over real sockets -------------------------------------------

DEEP = '{"text":"x","a":' + "[" * 1000 + "]" * 1000 + "}"  # 2 KB, within every limit


async def test_deeply_nested_frame_is_bad_json_and_the_socket_stays(client: Any) -> None:
    async with client.ws_connect("/rooms/r/ws?user=ana") as ws:
        await ws_until(ws, "presence")
        await ws.send_str(DEEP)
        error = await ws_json(ws)
        assert error == {
            "type": "error",
            "code": "bad_json",
            "detail": "the message is not valid JSON",
        }
        await ws.send_json({"text": "still here"})
        assert (await ws_until(ws, "message"))["text"] == "still here"


async def test_deeply_nested_body_is_bad_json(client: Any) -> None:
    resp = await client.post(
        "/rooms/r/messages", data=DEEP, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["code"] == "bad_json"
    assert (await (await client.get("/rooms/r/messages?since=0")).json())["messages"] == []


# A text of exactly the limit, written with the longest legal escapes:
# 12 bytes per astral character, 6 per control character.
MAX = 4096
ESCAPED = {
    "astral": "😀" * (MAX // 4),
    "control": "\x01" * MAX,
    "mixed": "é" * (MAX // 2 - 2) + "😀",
}


@pytest.mark.parametrize("name", sorted(ESCAPED))
async def test_a_text_that_fits_is_stored_however_it_is_escaped(
    make_client: MakeClient, name: str
) -> None:
    client = await make_client(max_message_bytes=MAX)
    text = ESCAPED[name]
    assert len(text.encode()) <= MAX
    cid = "\U0001f600" * 64  # the longest client_id, escaped too
    frame = json.dumps({"type": "send", "text": text, "client_id": cid})  # ASCII-escaped
    async with client.ws_connect("/rooms/r/ws?user=" + "\u00e9" * 32) as ws:
        await ws.send_str(frame)
        got = await ws_until(ws, "message")
        assert got["text"] == text and got["client_id"] == cid
    body = json.dumps({"text": text, "client_id": cid, "user": "\U0001f600" * 32})
    resp = await client.post(
        "/rooms/r/messages", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["text"] == text


async def test_a_text_one_byte_over_is_too_long_not_a_closed_socket(
    make_client: MakeClient,
) -> None:
    client = await make_client(max_message_bytes=MAX)
    async with client.ws_connect("/rooms/r/ws") as ws:
        await ws.send_str(json.dumps({"text": "\x01" * (MAX + 1)}))
        error = await ws_until(ws, "error")
        assert error["code"] == "too_long"
        await ws.send_json({"text": "after"})
        assert (await ws_until(ws, "message"))["text"] == "after"
    body = json.dumps({"text": "😀" * (MAX // 4) + "x"})
    resp = await client.post(
        "/rooms/r/messages", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413 and (await resp.json())["code"] == "too_long"
