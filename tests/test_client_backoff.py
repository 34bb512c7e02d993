"""Backoff with full jitter: bounds, cap, floor, reset after a healthy link."""

from __future__ import annotations

import random

import pytest

from realtime.client import Backoff
from realtime.client.backoff import Retrier


def test_waits_grow_within_the_full_jitter_bounds_up_to_the_cap() -> None:
    policy = Backoff(initial=0.5, cap=8.0, multiplier=2.0)
    retrier = Retrier(policy, random.Random(7))
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    delays = [retrier.next_delay() for _ in ceilings]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert 0.0 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
    assert policy.ceiling(10_000) == 8.0  # no overflow after very many attempts


def test_jitter_spreads_clients_over_the_whole_window() -> None:
    rng = random.Random(1)
    delays = [Retrier(Backoff(initial=1.0), rng).next_delay() for _ in range(1000)]
    assert min(delays) < 0.05 and max(delays) > 0.95


def test_server_retry_is_a_floor() -> None:
    retrier = Retrier(Backoff(initial=0.25), random.Random(3), floor=1.0)
    assert all(1.0 <= retrier.next_delay() <= 1.0 + retrier.policy.cap for _ in range(20))


def test_attempts_reset_only_after_a_healthy_connection() -> None:
    retrier = Retrier(Backoff(initial=1.0, cap=100.0, healthy_after=10.0), random.Random(5))
    for _ in range(5):
        retrier.next_delay()
    retrier.connection_lasted(2.0)
    assert retrier.attempt == 5
    retrier.connection_lasted(10.0)
    assert retrier.attempt == 0


def test_nonsense_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(multiplier=0.5)
    with pytest.raises(ValueError):
        Backoff(initial=-1)
