"""Subscriber and Room without sockets: syncing, live, closed; the replay
floor; one write per flush; slow and vanished subscribers."""

from __future__ import annotations

from realtime.core.ports import Member
from realtime.core.protocol import Event, Message
from realtime.core.room import CloseReason, Room, Subscriber, SubState

from .sinks import MemorySink


def msg(i: int, room: str = "r") -> Event:
    return Event.message(Message(room, str(i), "u", f"m{i}", 0.0))


def presence() -> Event:
    return Event("presence", {"type": "presence", "room": "r", "event": "join"})


def subscriber(room: Room, sink: MemorySink, closed: list[Subscriber] | None = None) -> Subscriber:
    sink_closed = closed if closed is not None else []
    return Subscriber(sink, Member("c1", "ana", "test"), room, 1000, sink_closed.append)


def flush(room: Room, *events: Event) -> int:
    for ev in events:
        room.queue(ev)
    return room.flush()


def test_syncing_holds_live_events_and_going_live_sends_them_after_the_replay() -> None:
    room, sink = Room("r"), MemorySink()
    sub = subscriber(room, sink)
    assert sub.state is SubState.SYNCING
    assert flush(room, msg(3), presence()) == 0 and sink.writes == []
    sub.go_live([msg(1), msg(2)], since=None)
    assert sub.state is SubState.LIVE
    assert sink.ids() == ["1", "2", "3"] and len(sink.writes) == 1
    assert [e["type"] for e in sink.events()] == ["message"] * 3 + ["presence"]


def test_held_events_the_replay_already_had_are_not_sent_twice() -> None:
    room, sink = Room("r"), MemorySink()
    sub = subscriber(room, sink)
    flush(room, msg(2), msg(3))  # stored during the history read, and also read by it
    sub.go_live([msg(1), msg(2)], since=None)
    assert sink.ids() == ["1", "2", "3"]


def test_the_floor_drops_late_repeats_once_live_then_gets_out_of_the_way() -> None:
    room, sink = Room("r"), MemorySink()
    sub = subscriber(room, sink)
    sub.go_live([msg(4), msg(5)], since="3")
    # 5 was in the replay but its broadcast arrives only now: skipped.
    assert flush(room, msg(5)) == 0
    assert flush(room, msg(6), presence()) == 2
    assert flush(room, msg(7)) == 1
    assert sink.ids() == ["4", "5", "6", "7"]


def test_resume_with_nothing_new_sends_nothing_and_still_skips_older_ids() -> None:
    room, sink = Room("r"), MemorySink()
    sub = subscriber(room, sink)
    sub.go_live([], since="9")
    assert sink.writes == []
    flush(room, msg(9), msg(10))
    assert sink.ids() == ["10"]


def test_a_flush_is_one_write_per_subscriber_and_counts_deliveries() -> None:
    room = Room("r")
    sinks = [MemorySink() for _ in range(3)]
    for sink in sinks:
        subscriber(room, sink).go_live([], since=None)
    assert flush(room, msg(1), msg(2), msg(3)) == 9
    for sink in sinks:
        assert len(sink.writes) == 1 and sink.ids() == ["1", "2", "3"]
    assert sinks[0].writes[0] is sinks[1].writes[0]  # joined once, shared


def test_a_slow_subscriber_is_closed_and_removed_the_others_get_everything() -> None:
    room, slow, fine = Room("r"), MemorySink(unsent=5000), MemorySink()
    closed: list[Subscriber] = []
    s1 = subscriber(room, slow, closed)
    s2 = subscriber(room, fine, closed)
    s2.go_live([], None)
    s1.go_live([], None)
    flush(room, msg(1))
    assert slow.closed is CloseReason.SLOW and s1.close_reason is CloseReason.SLOW
    assert closed == [s1] and s1.state is SubState.CLOSED and len(room) == 1
    flush(room, msg(2))
    assert fine.ids() == ["1", "2"] and slow.ids() == ["1"]


def test_a_vanished_connection_is_closed_as_gone() -> None:
    room, sink = Room("r"), MemorySink()
    closed: list[Subscriber] = []
    sub = subscriber(room, sink, closed)
    sub.go_live([], None)
    sink.gone = True
    assert flush(room, msg(1)) == 0  # not delivered, and not the room's failure
    assert sub.close_reason is CloseReason.GONE and closed == [sub] and len(room) == 0


def test_closing_twice_closes_the_transport_once_and_detach_closes_nothing() -> None:
    room, sink = Room("r"), MemorySink()
    closed: list[Subscriber] = []
    sub = subscriber(room, sink, closed)
    sub.close(CloseReason.SHUTDOWN)
    sub.close(CloseReason.SLOW)
    assert sink.closed is CloseReason.SHUTDOWN and closed == [sub]
    other = subscriber(room, MemorySink())
    other.detach()
    assert other.state is SubState.CLOSED and other.sink.closed is None  # type: ignore[attr-defined]
    assert len(room) == 0
