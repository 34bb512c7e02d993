"""Typed events and id order of ``realtime.client``."""

from __future__ import annotations

import pytest

from realtime.client import ErrorEvent, Gap, Member, Message, Presence, id_key
from realtime.client.events import parse_event


def test_ids_order_like_the_server() -> None:
    ids = ["10", "9", "1700000000000-3", "1700000000000-12", "2", "1700000000001-0"]
    assert sorted(ids, key=id_key) == [
        "2",
        "9",
        "10",
        "1700000000000-3",
        "1700000000000-12",
        "1700000000001-0",
    ]
    assert id_key("17") == (17, 0)
    for bad in ["", "-1", "a", "1-", "1-x", "\uff11\uff12"]:
        with pytest.raises(ValueError):
            id_key(bad)


def test_each_event_type_round_trips() -> None:
    wire = [
        {
            "type": "message",
            "room": "r",
            "id": "17",
            "user": "ana",
            "text": "hi",
            "ts": 1.5,
            "client_id": "c-1",
        },
        {"type": "message", "room": "r", "id": "18", "user": "bo", "text": "yo", "ts": 2.0},
        {
            "type": "presence",
            "room": "r",
            "event": "join",
            "user": "bo",
            "transport": "sse",
            "count": 2,
            "members": [{"user": "bo", "transport": "sse"}, {"user": "ana", "transport": "ws"}],
        },
        {"type": "gap", "room": "r", "since": "3", "first_id": None, "detail": "nothing held"},
        {"type": "error", "code": "rate_limited", "detail": "slow down"},
    ]
    events = [parse_event(data) for data in wire]
    assert [type(e) for e in events] == [Message, Message, Presence, Gap, ErrorEvent]
    assert [e.to_dict() for e in events if e is not None] == wire
    presence = events[2]
    assert isinstance(presence, Presence)
    assert presence.members[1] == Member("ana", "ws")
    with pytest.raises(AttributeError):
        presence.count = 3  # type: ignore[misc]


def test_unknown_types_are_skipped_and_malformed_ones_raise() -> None:
    assert parse_event({"type": "something-new"}) is None
    with pytest.raises(KeyError):
        parse_event({"type": "message", "room": "r"})
    with pytest.raises(ValueError):
        parse_event({"type": "message", "room": "r", "id": "x", "user": "u", "text": "", "ts": 1})
