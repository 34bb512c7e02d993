"""Token buckets and connection caps, on a controlled clock."""

from __future__ import annotations

import pytest

from realtime.policy.ratelimit import ConnectionCap, TokenBucket, parse_rate


def test_parse_rate() -> None:
    assert parse_rate("20/s") == 20
    assert parse_rate("600/min") == 10
    with pytest.raises(ValueError):
        parse_rate("fast")


def test_bucket_allows_burst_then_refills_at_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take() == 0.0
    now[0] += 100
    assert [bucket.take() for _ in range(4)][:3] == [0.0, 0.0, 0.0]


def test_connection_cap() -> None:
    cap = ConnectionCap(2)
    assert cap.acquire("a") and cap.acquire("a") and not cap.acquire("a")
    assert cap.acquire("b")
    cap.release("a")
    assert cap.acquire("a")
