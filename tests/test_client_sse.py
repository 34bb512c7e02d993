"""The client's event-stream parser, fed the way a network delivers bytes."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from realtime.client.sse import SseEvent, SseParser

STREAM = (
    b"retry: 1000\n\n"
    b": ping\n\n"
    b'id: 17\nevent: message\ndata: {"type":"message","text":"h\xc3\xa9"}\n\n'
    b"event: presence\r\ndata: {}\r\n\r\n"
    b"data: one\rdata: two\r\r"
    b"event: gap\ndata\n\n"
)
EXPECTED = [
    SseEvent("message", '{"type":"message","text":"hé"}', "17"),
    SseEvent("presence", "{}", "17"),  # the last id stays until a new one
    SseEvent("message", "one\ntwo", "17"),
    SseEvent("gap", "", "17"),
]


def test_whole_stream() -> None:
    parser = SseParser()
    assert parser.feed(STREAM) == EXPECTED
    assert parser.retry_ms == 1000


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_into_chunks_gives_the_same_events(cuts: list[int]) -> None:
    """A chunk may end anywhere: inside a UTF-8 character, between CR and LF."""
    parser = SseParser()
    events: list[SseEvent] = []
    bounds = [0, *sorted(cuts), len(STREAM)]
    for start, end in itertools.pairwise(bounds):
        events.extend(parser.feed(STREAM[start:end]))
    assert events == EXPECTED
    assert parser.retry_ms == 1000


def test_bad_retry_and_unknown_fields_are_ignored() -> None:
    parser = SseParser()
    assert parser.feed(b"retry: soon\nfoo: bar\ndata: x\n\n") == [SseEvent("message", "x", None)]
    assert parser.retry_ms is None


def test_an_event_without_data_is_not_dispatched() -> None:
    parser = SseParser()
    assert parser.feed(b"event: presence\n\nid: 3\n\n") == []
    assert parser.feed(b"data: y\n\n") == [SseEvent("message", "y", "3")]
