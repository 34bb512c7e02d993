"""How long to wait before the next connection attempt.

Exponential backoff with full jitter: attempt ``n`` waits a uniformly random
time in ``[0, min(cap, initial * multiplier**n)]``, so clients dropped together
(a server restart) do not all come back in the same instant. A server's SSE
``retry:`` is a floor added in front of that. The attempt count goes back to
zero after a connection stayed up for ``healthy_after`` seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.25
    cap: float = 30.0
    multiplier: float = 2.0
    healthy_after: float = 10.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0 or self.multiplier < 1 or self.healthy_after < 0:
            raise ValueError("backoff: initial, cap, healthy_after >= 0 and multiplier >= 1")

    def ceiling(self, attempt: int) -> float:
        """The longest wait of attempt ``attempt`` (0 = the first retry)."""
        # min() before the power would overflow a float after ~1000 attempts.
        exponent = min(attempt, 64)
        return min(self.cap, self.initial * self.multiplier**exponent)


@dataclass(slots=True)
class Retrier:
    """The backoff state of one subscription."""

    policy: Backoff
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0
    floor: float = 0.0  # the server's SSE retry:, in seconds

    def next_delay(self) -> float:
        delay = self.floor + self.rng.uniform(0.0, self.policy.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def connection_lasted(self, seconds: float) -> None:
        if seconds >= self.policy.healthy_after:
            self.attempt = 0
