"""Who may connect and send: Origin checks, tokens, rate limits, connection caps.

Every check raises a JSON HTTP error before any upgrade, so a refused client
gets a clear status (403, 401, 429) and nothing is registered.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from ..core.protocol import ProtocolError, validate_room, validate_since, validate_user
from ..metrics import Metrics
from ..policy.origin import origin_allowed, parse_allowed
from ..policy.ratelimit import ConnectionCap, Limiter, TokenBucket, parse_rate
from ..policy.tokens import Gate, Grant, TokenError, token_from
from ..settings import Settings
from .errors import json_error, protocol_error

# Seconds a client over the per-address cap is told to wait: a slot frees
# when one of its other connections ends, which no one can predict.
CAP_RETRY_AFTER = 5


@dataclass(slots=True)
class Target:
    """Who wants to join which room, from where: parsed before any upgrade."""

    room: str
    user: str
    since: str | None
    grant: Grant | None = None  # the token's, when one came

    @property
    def user_from_token(self) -> bool:
        return self.grant is not None


def parse_target(request: web.Request, since: str | None) -> Target:
    try:
        return Target(
            room=validate_room(request.match_info.get("room", "lobby")),
            user=validate_user(request.query.get("user")),
            since=validate_since(since),
        )
    except ProtocolError as exc:
        raise protocol_error(exc) from None


@dataclass
class Guard:
    allowed_origins: frozenset[str]
    gate: Gate
    per_address: Limiter
    connections: ConnectionCap
    metrics: Metrics

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> Guard:
        rate = parse_rate(settings.rate_limit)
        return cls(
            allowed_origins=parse_allowed(settings.allow_origin),
            gate=Gate(settings.secret, settings.private_rooms),
            per_address=Limiter(rate, settings.rate_burst),
            connections=ConnectionCap(settings.max_connections_per_ip),
            metrics=metrics,
        )

    def refuse(
        self, reason: str, status: int, code: str, detail: str, **headers: str
    ) -> web.HTTPException:
        self.metrics.refused.labels(reason).inc()
        return json_error(status, code, detail, **headers)

    def check_origin(self, request: web.Request) -> None:
        origin = request.headers.get("Origin")
        if not origin_allowed(
            origin, host=request.host, scheme=request.scheme, allowed=self.allowed_origins
        ):
            raise self.refuse(
                "origin", 403, "origin_not_allowed", f"origin {origin!r} may not use this server"
            )

    def check_token(self, request: web.Request, room: str, subscribe: bool) -> Grant | None:
        token = token_from(request.query, request.headers, request.cookies)
        try:
            return self.gate.check(room, token, subscribe=subscribe)
        except TokenError as exc:
            raise self.refuse("token", exc.status, exc.code, exc.detail) from None

    def admit(self, request: web.Request, since: str | None, *, subscribe: bool = True) -> Target:
        """Parse room, user and resume point; a valid token's user wins.
        ``subscribe=False`` for a send, which a publisher token may make."""
        target = parse_target(request, since)
        grant = self.check_token(request, target.room, subscribe)
        if grant is not None:
            target.user = grant.user
            target.grant = grant
        return target

    def connection_bucket(self) -> TokenBucket:
        return self.per_address.bucket()

    def take_send(self, request: web.Request, bucket: TokenBucket | None, transport: str) -> float:
        """0 when the send may go ahead, else the seconds to wait."""
        wait = bucket.take() if bucket is not None else 0.0
        if wait == 0.0:
            wait = self.per_address.take(request.remote or "?")
        if wait > 0.0:
            self.metrics.rate_limited.labels(transport).inc()
        return wait

    def rate_limited(self, wait: float) -> web.HTTPException:
        retry = str(max(1, math.ceil(wait)))
        return json_error(
            429, "rate_limited", f"too many messages; retry in {retry} s", **{"Retry-After": retry}
        )

    @asynccontextmanager
    async def connection(self, request: web.Request) -> AsyncIterator[None]:
        address = request.remote or "?"
        if not self.connections.acquire(address):
            raise self.refuse(
                "connections",
                429,
                "too_many_connections",
                f"at most {self.connections.limit} connections per client address",
                **{"Retry-After": str(CAP_RETRY_AFTER)},
            )
        try:
            yield
        finally:
            self.connections.release(address)


GUARD = web.AppKey("guard", Guard)
