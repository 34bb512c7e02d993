"""Validation and encoding rules that every transport relies on."""

from __future__ import annotations

import json

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
